"""Paying: tenders, the commit that posts the sale, then receipt printing and the drawer.
Nothing is posted before the tenders cover the total; printer and drawer faults after
the commit never undo the sale."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from kiosk import i18n
from kiosk.checkout.core import (
    MAX_REFERENCE,
    SELLING_STAFF,
    Outcome,
    PendingPayment,
    State,
    _sentence,
)
from kiosk.checkout.report_text import money_arg
from kiosk.documents import TextReport
from kiosk.drivers.base import DrawerError, PrinterError
from kiosk.i18n import N_
from kiosk.ledger import payments, receipts, sales
from kiosk.ledger.core import LedgerError, StorageFullError
from kiosk.ledger.money import CASH, ZERO, MoneyError, Tender, round_cash, settle
from kiosk.ledger.posting import Posted


class PayingMixin:
    """From the pay button to the receipt: cash, card (manual or by terminal), commit."""

    @property
    def amount_due(self) -> Decimal:
        """What is still to pay, before cash rounding."""
        base = self._payable_total()
        paid = sum((t.amount for t in self.payment.tenders if t.kind != CASH), ZERO)
        cash = sum((t.amount for t in self.payment.tenders if t.kind == CASH), ZERO)
        return base - paid - cash

    def _payable_total(self) -> Decimal:
        if self.payment.kind == "exchange" and self.payment.exchange is not None:
            return self._exchange_preview(self.payment.exchange)
        return self.cart.priced().total

    def pay(self) -> Outcome:
        self._record({"pay": "start"})
        return self._start_paying()

    def _start_paying(self) -> Outcome:
        if self.state == State.PAYING:
            if self._paid_but_not_recorded():
                return self._commit()
            return self._ok(
                i18n._("Still to pay: {amount}", amount=money_arg(self.amount_due, self.config))
            )
        if self.state != State.SCANNING or not self.cart:
            return self._no(i18n._("Scan something first"))
        if self.role == "mobile-cart" and not self.config.checkout.cart_tendering:
            return self._no(i18n._("This cart does not take payment"))
        if self.cart.waiting_for_approval:
            if self.staff and self.staff.role in SELLING_STAFF:
                return self._no(i18n._("Check the customer's age, then approve"))
            return self._ask_staff("approve_age", (), SELLING_STAFF, i18n._("An age check"))
        self.payment = PendingPayment()
        self._slips = []
        self.terminal_status, self.terminal_texts = None, ()
        self._to(State.PAYING)
        return self._ok(i18n._("To pay: {amount}", amount=money_arg(self.amount_due, self.config)))

    def tender_cash(self, amount: object) -> Outcome:
        self._record({"pay": {"cash": str(amount)}})
        return self._tender(CASH, amount, None)

    def tender_card(self, amount: object = None, reference: str | None = None) -> Outcome:
        """A card payment. With a connected terminal (ZVT) the kiosk sends it the amount
        and follows it (`terminal_poll`); with a manual one, staff type the approval
        reference the terminal shows. Only references are recorded, never the card."""
        if reference and payments.looks_like_card_number(reference):
            return self._no(  # never stored, nor logged in the session log
                i18n._("That looks like a card number: type the terminal's approval reference")
            )
        entry: dict[str, Any] = {"card": str(amount) if amount is not None else None}
        if reference:
            entry["ref"] = reference
        elif self.terminal.kind != "manual":  # replayed with kiosk replay --terminal sim
            entry = {"terminal": entry["card"]}
        self._record({"pay": entry})
        if self.terminal.kind == "manual":
            return self._tender("card", amount, reference)
        if reference:  # the terminal's link is down and staff took the card by hand
            if not (self.staff and self.staff.role in SELLING_STAFF):
                return self._no(i18n._("Pay on the card terminal: insert or tap your card there"))
            return self._tender("card", amount, reference)
        return self._pay_at_terminal(amount)

    def _due_text(self) -> str:
        """What the pay screen shows: nothing more to pay once the tenders cover it."""
        return "0" if self._paid_but_not_recorded() else str(self.amount_due)

    def _paid_but_not_recorded(self) -> bool:
        """Tenders that cover the total while still paying: the commit failed (a full
        disk). Pressing pay or any tender again retries it; the money is not taken twice."""
        if not self.payment.tenders:
            return False
        try:
            settle(self._payable_total(), self.payment.tenders, self.ledger.policy)
        except MoneyError:
            return False
        return True

    def _begin_tender(self) -> Outcome | None:
        """Before a tender: retry the commit a full disk stopped (the money is not taken
        twice), or start paying; None to go on."""
        if self.state == State.PAYING and self._paid_but_not_recorded():
            return self._commit()
        if self.state != State.PAYING:
            started = self._start_paying()
            if not started.ok:
                return started
        return None

    def _tender(self, kind: str, amount: object, reference: str | None) -> Outcome:
        stopped = self._begin_tender()
        if stopped is not None:
            return stopped
        due = self.amount_due
        try:
            value = self._typed_money(amount, N_("amount")) if amount is not None else due
        except ValueError as exc:
            return self._no(_sentence(exc))
        if kind == "card" and not reference:
            return self._no(i18n._("Enter the terminal's approval reference"))
        if reference is not None and (
            len(reference) > MAX_REFERENCE or not reference.isprintable()
        ):
            return self._no(
                i18n._(
                    "An approval reference is at most {most} plain characters",
                    most=MAX_REFERENCE,
                )
            )
        if value <= 0:
            return self._no(i18n._("Amount must be above zero"))
        tenders = [*self.payment.tenders, Tender(kind, value, reference)]
        non_cash = sum((t.amount for t in tenders if t.kind != CASH), ZERO)
        if non_cash > self._payable_total():
            return self._no(
                i18n._("A card cannot pay more than the {due} due", due=money_arg(due, self.config))
            )
        self.payment.tenders = tenders
        self._emit("payment", kind=kind, amount=str(value))
        total = self._payable_total()
        try:
            settle(total, tenders, self.ledger.policy)
        except MoneyError:
            left = self.amount_due
            if kind == CASH or any(t.kind == CASH for t in tenders):
                left = round_cash(left, self.ledger.policy.cash_step, self.ledger.policy.unit)
            return self._ok(
                i18n._("Still to pay: {amount}", amount=money_arg(left, self.config)), due=left
            )
        return self._commit()

    def cancel_payment(self) -> Outcome:
        self._record({"pay": "cancel"})
        if self.state != State.PAYING:
            return self._no(i18n._("No payment in progress"))
        if self.terminal_job is not None:  # the terminal decides: declined, aborted or paid
            self.terminal.abort()
            return self._ok(i18n._("Cancelling the card payment at the terminal"))
        reversible = self._terminal_tenders()
        if reversible:
            rows = []
            for tender, pid in reversible:
                row = payments.record_request(
                    self.ledger, "reversal", tender.amount, self._terminal_name(), pid
                )
                rows.append((pid, row, tender.reference, tender.amount))
            numbers_ = [_receipt_of(ref) for _, _, ref, _ in rows]
            self._start_job("reverse", self._reverse_call, numbers_, context=rows)
            self.payment.tenders = [t for t in self.payment.tenders if t.kind == CASH]
            self.terminal_status = "processing"
        cards = [t for t in self.payment.tenders if t.kind != CASH]
        cash = sum((t.amount for t in self.payment.tenders if t.kind == CASH), ZERO)
        back = State.RETURNING if self.payment.kind == "exchange" else State.SCANNING
        self.payment = PendingPayment()
        self._to(back)
        refs = ", ".join(t.reference or "?" for t in cards)
        back_cash = money_arg(cash, self.config)
        if cards:
            self._alert(i18n._("Payment cancelled: reverse card payment(s) {refs}", refs=refs))
        if cards and cash:
            text = i18n._(
                "Payment cancelled: reverse card payment(s) {refs} on the terminal; "
                "give back {amount} cash",
                refs=refs,
                amount=back_cash,
            )
        elif cards:
            text = i18n._(
                "Payment cancelled: reverse card payment(s) {refs} on the terminal", refs=refs
            )
        elif cash:
            text = i18n._("Payment cancelled: give back {amount} cash", amount=back_cash)
        else:
            text = i18n._("Payment cancelled")
        return self._ok(text)

    def _terminal_tenders(self) -> list[tuple[Tender, int]]:
        """Card tenders of this payment that the terminal approved (journal rows open)."""
        refs = {t.reference: t for t in self.payment.tenders if t.kind == "card" and t.reference}
        if not refs or self.terminal.kind == "manual":
            return []
        rows = [r for r in payments.open_payments() if r.reference in refs]
        return [(refs[r.reference], r.id) for r in rows if r.state == "approved"]

    def _commit(self) -> Outcome:
        tenders = list(self.payment.tenders)
        try:
            with self.ledger.transaction():  # the sale and its card payments, together
                posted = self._post(tenders)
                payments.mark_committed(
                    [t.reference for t in tenders if t.kind == "card" and t.reference],
                    posted.number,
                )
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no(
                i18n._("Could not record the sale: this kiosk's storage is full. Call staff.")
            )
        except LedgerError as exc:
            return self._no(i18n._("Could not complete the sale: {error}. Call staff.", error=exc))
        return self._committed(posted, tenders)

    def _post(self, tenders) -> Posted:
        if self.payment.kind == "exchange":
            flow = self.payment.exchange
            return sales.post_exchange(
                self.ledger,
                flow.receipt,
                flow.lines,
                [li.to_sale_line() for li in flow.sold],
                tenders,
                self._staff_code(),
                flow.reason,
            )
        return sales.post_sale(
            self.ledger,
            [li.to_sale_line() for li in self.cart.lines],
            tenders,
            staff=self._staff_code(),
        )

    def _committed(self, posted: Posted, tenders) -> Outcome:
        self.storage_full = None  # it was written: there is space
        self.last_posted = posted
        self._emit("posted", receipt=posted.number, total=str(posted.total))
        if any(t.kind == CASH for t in tenders):
            self._open_drawer()
        self.cart.clear()
        self.returning = None
        self.payment = PendingPayment()
        self._to(State.RECEIPT)
        if posted.change:
            text = i18n._(
                "Paid, thank you! Change: {change}. Receipt {number}",
                change=money_arg(posted.change, self.config),
                number=posted.number,
            )
        else:
            text = i18n._("Paid, thank you! Receipt {number}", number=posted.number)
        return self._ok(text, receipt=posted.number)

    def _open_drawer(self) -> None:
        try:
            self.drawer.open()
            self._emit("drawer", opened=True)
        except DrawerError as exc:
            self._alert(i18n._("Cash drawer did not open: {error}", error=exc))

    def choose_receipt(self, printed: bool) -> Outcome:
        self._record({"receipt": "print" if printed else "none"})
        if self.state != State.RECEIPT or self.last_posted is None:
            return self._no(i18n._("No receipt to give"))
        number = self.last_posted.number
        outcome = self._print_receipt(number) if printed else self._ok(i18n._("No receipt"))
        slips, self._slips = self._slips, []
        if printed and outcome.ok:  # the terminal's receipt comes out with ours
            for slip in slips:
                self._print_slip("Card payment", slip)
        self._finish_customer()
        return outcome

    def _finish_customer(self) -> None:
        if self.role == "self-checkout" and self.staff:
            self.staff = None
            self._emit("staff", code=None)
        self._to(State.ATTRACT if self.role == "self-checkout" else State.SCANNING)

    def _print_receipt(self, number: str, reprint: bool = False) -> Outcome:
        job = receipts.enqueue(self.ledger, "receipt", number)
        try:
            self.printer.print_receipt(receipts.receipt_for(self.ledger, number, reprint))
        except PrinterError as exc:
            receipts.mark_failed(job, str(exc))
            self._alert(
                i18n._(
                    "Printer: {error}. Receipt {number} is queued for reprint",
                    error=exc,
                    number=number,
                )
            )
            return self._no(
                i18n._(
                    "The receipt could not be printed ({error}). Staff has been told; your "
                    "purchase is complete.",
                    error=exc,
                )
            )
        receipts.mark_printed(job)
        self._emit("printed", receipt=number)
        return self._ok(i18n._("Receipt {number} printed", number=number))

    def _print_slip(self, title: str, lines: tuple[str, ...]) -> None:
        try:
            self.printer.print_report(TextReport(title, tuple(lines)))
        except PrinterError as exc:
            self._alert(
                i18n._("Printer: {error}. The card terminal's receipt was not printed", error=exc)
            )


def _receipt_of(reference: str | None) -> str | None:
    """The terminal receipt number in a tender's reference ("T29001006 R0042 ...")."""
    found = re.search(r"\bR(\d+)\b", reference or "")
    return found.group(1) if found else None
