"""Settling card payments and refunds the journal left open (a restart, a lost answer):
reversed, refunded, posted or left for staff, and staff are told which. Apart from the
terminal's normal path because it runs without a customer, on the journal alone."""

from __future__ import annotations

from kiosk import i18n
from kiosk.checkout.core import Outcome, State, _said, kind_name
from kiosk.checkout.refunds import post_request
from kiosk.checkout.report_text import money_arg
from kiosk.checkout.terminal import _is_ours
from kiosk.drivers.payment import TerminalResult
from kiosk.ledger import payments
from kiosk.ledger.core import LedgerError
from kiosk.ledger.money import ZERO


class RecoveryMixin:
    """`recover_payments` and what it decides for each open journal row."""

    def recover_payments(self) -> Outcome:
        """After a restart (and then every SETTLE_EVERY_S while one is open): settle
        card payments the journal left open. An approved payment without its sale is
        reversed; a lost answer is asked for; staff are told what happened."""
        self._record({"recover": "payments"})
        self._settle_at = self.clock()
        if self.terminal_job is not None or self.terminal.kind == "manual":
            return Outcome(True, self.message)
        rows = payments.open_payments()
        if not rows:
            self.card_blocked = None
            if self.terminal_status is None:  # at start: register, so faults show early
                self._start_job("check", lambda _listener: self.terminal.register())
            return Outcome(True, self.message)
        work = []
        for row in rows:
            if self.state == State.PAYING and row.reference in {
                t.reference for t in self.payment.tenders
            }:
                continue  # in the cart being paid: its sale commits it
            if self.refunding and row.id in {p.row for p in self.refunding.parts}:
                continue  # the refund waiting here: posted with its return
            refund = row.kind != "authorize" and payments.is_refund(row.id)
            work.append((row.id, row.state, row.amount, row.receipt_no, refund))
        if not work:
            return Outcome(True, self.message)
        known = payments.known_receipts(None)
        self._start_job("recover", self._recover_call, work, known, context=work)
        return self._ok(i18n._("Settling interrupted card payments with the terminal"))

    def _last_was_ours(self, pid, amount, known, listener, newest_unknown):
        """A payment or refund whose answer was lost: is the terminal's last transaction
        it (approved, a receipt number not seen before, the same amount)? Returns
        ("ours" | "not_ours" | "unreachable", the terminal's answer or None). Only the
        newest lost one can be the terminal's last: older ones stay unreachable."""
        if pid != newest_unknown:
            return "unreachable", None
        last = self.terminal.last_transaction(listener)
        if last.outcome in ("failed", "unknown"):
            return "unreachable", last
        return ("ours" if _is_ours(last, amount, known) else "not_ours"), last

    def _recover_call(self, work, known, listener) -> list:
        """On the job's thread: terminal calls only, no ledger."""
        decisions = []
        newest_unknown = max((w[0] for w in work if w[1] != "approved"), default=None)
        for pid, state, amount, receipt_no, refund in work:
            last = None
            if refund:  # money back to a card: an approved one is posted, never reversed
                if state == "approved":
                    decisions.append((pid, "refunded", None, None))
                    continue
                verdict, last = self._last_was_ours(pid, amount, known, listener, newest_unknown)
                if verdict != "unreachable":
                    verdict = "refunded" if verdict == "ours" else "not_charged"
                decisions.append((pid, verdict, last, None))
                continue
            if state != "approved":
                verdict, last = self._last_was_ours(pid, amount, known, listener, newest_unknown)
                if verdict != "ours":
                    unreachable = verdict == "unreachable"
                    decisions.append(
                        (pid, "unreachable" if unreachable else "not_charged", last, None)
                    )
                    continue
                receipt_no = last.receipt_no
            if not receipt_no:  # never "reverse the last transaction": it may be another
                no = TerminalResult("declined", "no terminal receipt number: not reversed blindly")
                decisions.append((pid, "refund_needed", last, no))
                continue
            reversal = self.terminal.reverse(receipt_no, listener)
            if reversal.approved or reversal.code == 0xB4:  # reversed (now or before)
                decisions.append((pid, "reversed", last, reversal))
            elif reversal.outcome in ("failed", "unknown"):
                decisions.append((pid, "unreachable", last, reversal))
            else:
                decisions.append((pid, "refund_needed", last, reversal))
        return decisions

    def _after_recover(self, decisions, work) -> Outcome:
        if not isinstance(decisions, list):  # the driver failed: the terminal is not usable
            why = getattr(decisions, "message", None) or i18n._("terminal error")
            self.card_blocked = i18n._("{count} card payment(s) not settled", count=len(work))
            self._alert(
                i18n._(
                    "{count} card payment(s) are not settled ({why}). Check the terminal's last "
                    "receipts; the kiosk keeps asking",
                    count=len(work),
                    why=why,
                )
            )
            return self._no(i18n._("Card payments are paused until the terminal answers"))
        amounts = {pid: amount for pid, _, amount, _, _ in work}
        refunds = {pid for pid, *_, refund in work if refund}
        open_left = []
        groups: dict[str, int] = {}  # refunds: first the outcomes, then one posting a group
        for pid, verdict, last, _reversal in decisions:
            if pid in refunds and verdict != "unreachable":
                group = self._recover_refund_outcome(
                    pid, verdict, last, money_arg(amounts[pid], self.config)
                )
                if group is not None:
                    groups.setdefault(group, pid)
        for pid in groups.values():
            self._recover_refund(pid, money_arg(amounts[pid], self.config))
        for pid, verdict, last, reversal in decisions:
            amount = money_arg(amounts[pid], self.config)
            if pid in refunds and verdict != "unreachable":
                continue
            if last is not None and last.approved and verdict != "not_charged":
                self._journal(payments.record_outcome, self.ledger, pid, last)
            receipt = getattr(last, "receipt_no", None) or payments.get(pid).receipt_no
            if reversal is not None and reversal.outcome != "failed":
                self._journal(self._journal_reversal, pid, reversal)
            if verdict == "reversed":
                self._journal(payments.settle, self.ledger, pid, "reversed", "after restart")
                self._alert(
                    i18n._(
                        "Card payment of {amount} (terminal receipt {receipt}) was approved but "
                        "its sale was not recorded (restart): it was reversed, nothing charged",
                        amount=amount,
                        receipt=receipt,
                    )
                )
            elif verdict == "refund_needed":
                why = reversal.message if reversal else i18n._("reversal refused")
                self._journal(payments.settle, self.ledger, pid, "refund_needed", why)
                self._alert(
                    i18n._(
                        "Card payment of {amount} (terminal receipt {receipt}) was taken but its "
                        "sale was not recorded, and the terminal refused to reverse it ({why}): "
                        "refund it to the customer",
                        amount=amount,
                        receipt=receipt,
                        why=why,
                    )
                )
            elif verdict == "not_charged":
                self._journal(payments.settle, self.ledger, pid, "not_charged", "not taken")
                self._alert(
                    i18n._(
                        "Card payment of {amount} interrupted by a restart: nothing was taken",
                        amount=amount,
                    )
                )
            else:
                open_left.append(pid)
        if open_left:
            self.card_blocked = i18n._("{count} card payment(s) not settled", count=len(open_left))
            self._alert(
                i18n._(
                    "{count} card payment(s) are not settled: the terminal does not answer. Check "
                    "its last receipts; the kiosk keeps asking",
                    count=len(open_left),
                )
            )
            return self._no(i18n._("Card payments are paused until the terminal answers"))
        self.card_blocked = None
        return self._ok(i18n._("Card payments settled"))

    def _recover_refund_outcome(
        self, pid: int, verdict: str, last, amount: i18n.Money
    ) -> str | None:
        """A card refund a restart interrupted: record what the terminal said; the
        group (the refund's posting) whose money went back, to be posted once."""
        request = payments.request_of(pid) or {}
        what = _refund_of(request)
        if verdict == "not_charged":
            self._journal(payments.settle, self.ledger, pid, "not_charged", "not refunded")
            self._alert(
                i18n._(
                    "Card refund of {amount} for the {what} was interrupted by a restart: nothing "
                    "was refunded and nothing posted; do the return again",
                    amount=amount,
                    what=what,
                )
            )
            return None
        if last is not None and last.approved:
            self._journal(payments.record_outcome, self.ledger, pid, last)
        return str(request.get("group") or f"row {pid}")

    def _recover_refund(self, pid: int, amount: i18n.Money) -> None:
        """Post the return (exchange, void) of a card refund group the terminal gave
        back before a restart; if part of it is missing, the given parts wait to be
        reused when staff do the return again (one alert, one instruction)."""
        if payments.get(pid).state == "committed":
            return  # posted already (by this pass or before)
        request = payments.request_of(pid) or {}
        what = _refund_of(request)
        group = [
            row
            for row in payments.unsettled()
            if row.state in ("approved", "unposted")
            and (payments.request_of(row.id) or {}).get("group") == request.get("group")
        ]
        if len(group) != len(request.get("parts", [])):
            given = sum((row.amount for row in group), ZERO)
            for row in group:
                self._journal(payments.settle, self.ledger, row.id, "unposted", "part given")
            self._alert(
                i18n._(
                    "Card refund for the {what}: {given} was given before a restart, the rest was "
                    "not, and nothing is posted: do the return again (what was given is reused, "
                    "not sent again)",
                    what=what,
                    given=money_arg(given, self.config),
                )
            )
            return
        why = i18n._("it could not be posted")
        if group:
            try:
                with self.ledger.transaction():
                    posted = post_request(
                        self.ledger, request, [(r.amount, r.reference) for r in group]
                    )
                    payments.mark_refunds_committed([r.id for r in group], posted.number)
            except LedgerError as exc:
                why = _said(exc)
            else:
                self._alert(
                    i18n._(
                        "Card refund of {amount} for the {what} was given before a restart: "
                        "{kind} {number} is now posted",
                        amount=amount,
                        what=what,
                        kind=kind_name(posted.kind),
                        number=posted.number,
                    )
                )
                return
        self._journal(payments.settle, self.ledger, pid, "unposted", f"not posted: {why}")
        self._alert(
            i18n._(
                "Card refund of {amount} for the {what} was given, but it could not be posted "
                "({why}): post it by hand, then resolve payment {pid}",
                amount=amount,
                what=what,
                why=why,
                pid=str(pid),
            )
        )


def _refund_of(request: dict) -> i18n.Message:
    """What a journaled card refund was for: "return of receipt till-01-000042"."""
    return i18n._(
        "{kind} of receipt {receipt}",
        kind=kind_name(request.get("kind", "return")),
        receipt=request.get("receipt") or "-",
    )
