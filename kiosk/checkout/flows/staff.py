"""The staff menu and what it offers beside the flows: reprints, the Z report with the
terminal's end of day, and the card payments that need attention."""

from __future__ import annotations

from kiosk import i18n, numbers
from kiosk.checkout.core import ANY_STAFF, SUPERVISOR, Outcome, State, _sentence, kind_name
from kiosk.checkout.report_text import money, money_arg, z_report_lines
from kiosk.documents import TextReport
from kiosk.drivers.base import PrinterError
from kiosk.drivers.payment import TerminalResult
from kiosk.i18n import N_
from kiosk.ledger import payments, receipts, reports
from kiosk.ledger.core import LedgerError
from kiosk.ledger.money import ZERO


class StaffMenuMixin:
    """The staff menu and its tools."""

    def staff_menu(self) -> Outcome:
        self._record({"menu": True})
        if not self.staff:
            return self._no(i18n._("Staff login needed"))
        if self.state in (State.PAYING, State.RECEIPT) or (self.cart and self.state != State.HELP):
            return self._no(i18n._("Finish or cancel the sale first"))
        self._close_flows()
        self._to(State.STAFF_MENU)
        return self._ok(i18n._("Staff menu"))

    def reprint(self, receipt: str | None = None) -> Outcome:
        self._record({"reprint": receipt or True})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        number = receipt or (self.last_posted.number if self.last_posted else None)
        if number is None:
            queued = receipts.unprinted()
            if not queued:
                return self._no(i18n._("No receipt to reprint"))
            number = queued[-1].ref
        try:
            return self._print_receipt(number, reprint=True)
        except LedgerError as exc:
            return self._no(_sentence(exc))

    def reprint_failed(self) -> Outcome:
        """Print every receipt a printer fault left in the queue."""
        self._record({"reprint": "failed"})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        jobs = [j for j in receipts.unprinted() if j.kind == "receipt"]
        done = 0
        for job in jobs:
            try:
                self.printer.print_receipt(receipts.receipt_for(self.ledger, job.ref, True))
            except PrinterError as exc:
                receipts.mark_failed(job, str(exc))
                return self._no(
                    i18n._(
                        "Printer: {error}. {count} receipt(s) still queued",
                        error=exc,
                        count=len(jobs) - done,
                    )
                )
            receipts.mark_printed(job)
            done += 1
        return self._ok(i18n._("Reprinted {done} receipt(s)", done=done))

    def end_of_day(self, opening_float: object = "0") -> Outcome:
        self._record({"report": "z", "float": str(opening_float)})
        refusal = self._need(SUPERVISOR)
        if refusal:
            return self._no(refusal)
        try:
            float_value = self._typed_money(opening_float, N_("opening float"))
        except ValueError as exc:
            return self._no(_sentence(exc))
        z = reports.z_report(self.clock().astimezone().date(), float_value)
        lines = tuple(z_report_lines(z, self.config))
        try:
            self.printer.print_report(TextReport(lines[0], lines))
        except PrinterError as exc:
            self._alert(i18n._("Printer: {error}. The Z report is on screen only", error=exc))
        expected = money_arg(z.cash_expected, self.config)
        text = i18n._("Z report: cash expected {amount}", amount=expected)
        if self.terminal.kind != "manual":  # ours is done; the terminal's day follows
            why = None
            if self.terminal_job is not None:
                why = i18n._("it is busy")
            elif self.card_blocked:
                why = i18n._("a card payment is not settled ({why})", why=self.card_blocked)
            if why:
                self._alert(
                    i18n._(
                        "Card terminal end of day not run: {why}. Run it later (kiosk hw payment "
                        "--end-of-day)",
                        why=why,
                    )
                )
            else:
                self.terminal_status = "processing"
                self._start_job("end_of_day", self.terminal.end_of_day, context=z)
                text = i18n._(
                    "Z report: cash expected {amount}; the card terminal is closing its day",
                    amount=expected,
                )
        return self._ok(text, report=z, lines=lines)

    def _after_end_of_day(self, result: TerminalResult, z) -> Outcome:
        """The terminal's end of day, printed after our Z report. A failure never takes
        the Z report back: staff are told to run it again."""
        self.terminal_status = None
        if not result.approved:
            self._alert(
                i18n._(
                    "Card terminal end of day failed ({message}); the Z report is complete. Run "
                    "it again: kiosk hw payment --end-of-day",
                    message=result.message,
                )
            )
            return self._no(
                i18n._(
                    "Z report done; the card terminal's end of day failed: {message}",
                    message=result.message,
                )
            )
        self._journal(payments.record_end_of_day, self.ledger, self._staff_code(), result)
        ours = z.tenders.get("card", ZERO)
        lines = [f"Card terminal end of day {z.day.isoformat()}"]
        if result.terminal_id:
            lines.append(f"terminal id {result.terminal_id}")
        if result.amount is not None:
            lines.append(f"terminal total      {money(result.amount, self.config)}")
        lines.append(f"kiosk card tenders  {money(ours, self.config)}")
        if result.amount is not None and result.amount != ours:
            lines.append(f"difference          {money(result.amount - ours, self.config)}")
            lines.append("(the terminal counts its batch since its last end of day)")
        lines += list(result.admin_receipt)
        try:
            self.printer.print_report(TextReport(lines[0], tuple(lines)))
        except PrinterError as exc:
            self._alert(
                i18n._("Printer: {error}. The card terminal's totals are on screen only", error=exc)
            )
        total = money_arg(result.amount, self.config) if result.amount is not None else "-"
        return self._ok(
            i18n._("Card terminal day closed: terminal total {total}", total=total),
            lines=tuple(lines),
        )

    def list_payments(self) -> Outcome:
        """Staff: the card payments and refunds that are not settled, one line each."""
        self._record({"payments": "list"})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        self.payments_view = [payments.describe(row) for row in payments.unsettled()]
        if self.refunding is not None:
            pending = self.refunding
            left = sum((p.amount for p in pending.parts if p.reference is None), ZERO)
            self.payments_view.insert(
                0,
                i18n._(
                    "waiting: {kind} of {receipt}, {amount} to the card",
                    kind=kind_name(pending.kind),
                    receipt=pending.receipt or "-",
                    amount=money_arg(left, self.config),
                ),
            )
        if not self.payments_view:
            return self._ok(i18n._("No unsettled card payments"), payments=[])
        return self._ok(
            i18n._("{count} card payment(s) need attention", count=len(self.payments_view)),
            payments=list(self.payments_view),
        )

    def retry_payments(self) -> Outcome:
        """Staff: ask the terminal about unsettled payments now (not in 30 s)."""
        self._record({"payments": "retry"})
        refusal = self._need(ANY_STAFF)
        if refusal:
            return self._no(refusal)
        if self.terminal.kind == "manual":
            return self._no(i18n._("No card terminal is connected: resolve them by hand"))
        if self.terminal_job is not None:
            return self._no(i18n._("The card terminal is busy: try again in a moment"))
        outcome = self.recover_payments()
        if self.terminal_job is None:
            return self.list_payments()
        return outcome

    def resolve_payment_text(self, text: str) -> Outcome:
        """The screen's text entry: "<payment number> <reason>"."""
        number, _, reason = text.strip().partition(" ")
        return self.resolve_payment(number.lstrip("#"), reason)

    def resolve_payment(self, payment_id: object, reason: str = "") -> Outcome:
        """A supervisor settled a payment by hand (refunded it at the terminal, found
        it on the terminal's receipts): recorded with the reason, audited."""
        if payments.looks_like_card_number(reason):
            return self._no(i18n._("The reason looks like it holds a card number: leave it out"))
        self._record({"resolve": {"payment": str(payment_id), "reason": reason}})
        refusal = self._need(SUPERVISOR)
        if refusal:
            return self._no(refusal)
        try:
            pid = numbers.whole(payment_id, "payment", minimum=1, maximum=2**62)
        except ValueError as exc:
            return self._no(_sentence(exc))
        if self.refunding and pid in {p.row for p in self.refunding.parts}:
            return self._no(i18n._("That refund is waiting here: finish or cancel it first"))
        try:
            row = payments.resolve(self.ledger, pid, self._staff_code(), reason)
        except LedgerError as exc:
            return self._no(_sentence(exc))
        if not payments.open_payments():
            self.card_blocked = None
        self.list_payments()
        return self._ok(
            i18n._("Payment {id} resolved by hand: {reason}", id=str(row.id), reason=reason.strip())
        )
