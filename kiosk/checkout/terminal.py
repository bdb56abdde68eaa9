"""The card terminal's side of paying: starting its calls on a thread, following them
(`terminal_poll`), and what each answer means for the sale, including lost answers
and amounts the terminal approved wrongly. Only references are recorded, never cards."""

from __future__ import annotations

from decimal import Decimal

from kiosk import i18n
from kiosk.checkout.core import Outcome, _sentence
from kiosk.checkout.report_text import money_arg
from kiosk.drivers.payment import TerminalJob, TerminalResult
from kiosk.i18n import N_
from kiosk.ledger import payments
from kiosk.ledger.core import LedgerError, StorageFullError
from kiosk.ledger.money import CASH, ZERO


class TerminalMixin:
    """Card payments through a connected terminal (ZVT or the simulator)."""

    def _terminal_name(self) -> str:
        where = getattr(getattr(self.terminal, "link", None), "where", "")
        return f"{self.terminal.kind} {where}".strip()

    def _start_job(self, purpose: str, call, *args, context=None) -> None:
        self.terminal_job = TerminalJob(
            purpose, call, *args, notify=self._poke_app, context=context
        ).start()

    def _poke_app(self) -> None:
        if self.terminal_notify is not None:
            self.terminal_notify()

    def _pay_at_terminal(self, amount: object) -> Outcome:
        if self.terminal_job is not None:
            return self._no(i18n._("The card terminal is busy: follow it, or cancel the payment"))
        stopped = self._begin_tender()
        if stopped is not None:
            return stopped
        if self.card_blocked:
            self._alert(
                i18n._("Card payments wait: {card_blocked}", card_blocked=self.card_blocked)
            )
            return self._no(
                i18n._("Card payment is not possible right now: pay another way or call staff")
            )
        due = self.amount_due
        try:
            value = self._typed_money(amount, N_("amount")) if amount is not None else due
        except ValueError as exc:
            return self._no(_sentence(exc))
        paid = sum((t.amount for t in self.payment.tenders if t.kind != CASH), ZERO)
        if value <= 0:
            return self._no(i18n._("Amount must be above zero"))
        if paid + value > self._payable_total():
            return self._no(
                i18n._("A card cannot pay more than the {due} due", due=money_arg(due, self.config))
            )
        pid = self._journal_first(
            i18n._("Card payment is not possible: this kiosk's storage is full"),
            i18n._("Card payment is not possible"),
            ("authorize", value, self._terminal_name()),
        )
        if isinstance(pid, Outcome):
            return pid
        self.terminal_status, self.terminal_texts = "follow", ()
        self._start_job("authorize", self.terminal.authorize, value, context=(pid, value))
        self._emit("payment", kind="card", status="started", amount=str(value))
        return self._ok(
            i18n._("Pay {amount} on the card terminal", amount=money_arg(value, self.config)),
            amount=value,
        )

    def terminal_poll(self) -> Outcome:
        """Take what the terminal reported (status for the screen, its result). The app
        calls this when the terminal's thread pokes it; `tick` calls it too."""
        job = self.terminal_job
        if job is None:
            return Outcome(True, self.message)
        finished = job.done.is_set()  # before draining: no update is missed
        for update in job.drain():
            if update.kind == "status":
                self.terminal_status, self.terminal_texts = update.status, update.texts
                self.last_activity = self.clock()
                self._emit("payment", kind="card", status=update.status)
        if not finished:
            return Outcome(True, self.message)
        self.terminal_job = None
        return getattr(self, "_after_" + job.purpose)(job.result, job.context)

    def terminal_wait(self, timeout: float = 300.0) -> Outcome:
        """Headless use (replay, tests): block until the terminal's call ends, then poll."""
        outcome = Outcome(True, self.message)
        while self.terminal_job is not None:
            if not self.terminal_job.wait(timeout):
                return self._no(i18n._("The card terminal did not finish in time"))
            outcome = self.terminal_poll()
        return outcome

    def _journal_first(self, full: str, failed: str, request: tuple) -> int | Outcome:
        """Journal a terminal call before the terminal hears of it (a power cut cannot
        lose it): its row, or the refusal (`full` when the disk is full)."""
        try:
            return payments.record_request(self.ledger, *request)
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no(full)
        except LedgerError as exc:
            return self._no(i18n._("{failed}: {error}", failed=failed, error=exc))

    def _journal(self, write, *args) -> bool:
        """A journal write after the terminal answered; a full disk must not lose the
        payment: the row stays open and the restart settles it with the terminal."""
        try:
            write(*args)
        except LedgerError as exc:
            self._alert(
                i18n._("Card payment journal not written ({error}); it is settled later", error=exc)
            )
            return False
        return True

    def _after_authorize(self, result: TerminalResult, context) -> Outcome:
        pid, value = context
        self._journal(payments.record_outcome, self.ledger, pid, result)
        self.terminal_status, self.terminal_texts = result.outcome, ()
        if result.approved and result.amount != value:
            return self._wrong_amount(pid, value, result)
        if result.approved:
            return self._card_approved(result, value)
        if result.outcome == "unknown":
            return self._ask_what_happened("payment", value, result, "settle", (pid, value))
        if result.outcome == "failed":
            self._alert(i18n._("Card terminal: {message}", message=result.message))
            return self._no(
                i18n._("The card terminal is not available. Pay another way or call staff")
            )
        if result.outcome == "aborted":
            return self._no(i18n._("Card payment cancelled. Try again or pay another way"))
        return self._no(
            i18n._(
                "Card declined ({message}). Try again or pay another way", message=result.message
            )
        )

    def _ask_what_happened(self, what, amount, result, job, context) -> Outcome:
        """A lost answer is never "declined": tell staff and ask the terminal for its
        last transaction (the `job` handler decides)."""
        words = {"amount": money_arg(amount, self.config), "message": result.message}
        if what == "refund":
            lost = i18n._(
                "Card refund of {amount}: the terminal's answer was lost ({message}); "
                "asking the terminal",
                **words,
            )
            wait = i18n._("Checking the refund with the card terminal, please wait")
        else:
            lost = i18n._(
                "Card payment of {amount}: the terminal's answer was lost ({message}); "
                "asking the terminal",
                **words,
            )
            wait = i18n._("Checking the payment with the card terminal, please wait")
        self._alert(lost)
        self.terminal_status = "processing"
        self._start_job(job, self.terminal.last_transaction, context=context)
        return self._no(wait)

    def _wrong_amount(self, pid: int, value: Decimal, result: TerminalResult) -> Outcome:
        """The terminal approved another amount than asked: it does not pay the cart.
        It is reversed at once by its receipt number; staff are told."""
        took = (
            i18n._("no amount") if result.amount is None else money_arg(result.amount, self.config)
        )
        self._alert(
            i18n._(
                "Card payment {pid}: the terminal approved {took} instead of {asked} (terminal "
                "receipt {receipt_no}): reversing it",
                pid=str(pid),
                took=took,
                asked=money_arg(value, self.config),
                receipt_no=result.receipt_no,
            )
        )
        try:
            row = payments.record_request(
                self.ledger, "reversal", value, self._terminal_name(), pid
            )
        except LedgerError as exc:  # stays approved: the restart's recovery reverses it
            self._alert(
                i18n._("Card payment journal not written ({error}); it is settled later", error=exc)
            )
            return self._no(i18n._("The card payment did not go through. Please call staff"))
        context = [(pid, row, result.reference, value)]
        self.terminal_status = "processing"
        self._start_job("mismatch", self._reverse_call, [result.receipt_no], context=context)
        return self._no(
            i18n._("The card terminal took a different amount: it is cancelled. Please wait")
        )

    def _after_mismatch(self, results, context) -> Outcome:
        done = self._after_reverse(results, context)
        if done.ok:
            return self._no(
                i18n._(
                    "The card payment did not go through (the terminal took a different amount; "
                    "it was cancelled). Try again or pay another way"
                )
            )
        return self._no(i18n._("The card payment did not go through. Staff will refund the card"))

    def _card_approved(self, result: TerminalResult, value: Decimal) -> Outcome:
        if result.customer_receipt:
            self._slips.append(result.customer_receipt)
        if result.merchant_receipt and self.config.payment.print_merchant_receipt:
            self._print_slip("Card payment (merchant copy)", result.merchant_receipt)
        return self._tender("card", value, result.reference)

    def _judge(self, amount: Decimal, last: TerminalResult) -> str:
        """Did a payment whose answer was lost go through? The terminal's last transaction
        says so when it is one the journal does not know, for the same amount."""
        if last.outcome in ("failed", "unknown"):
            return "unreachable"
        known = payments.known_receipts(last.terminal_id)
        return "charged" if _is_ours(last, amount, known) else "not_charged"

    def _after_settle(self, last: TerminalResult, context) -> Outcome:
        pid, value = context
        verdict = self._judge(value, last)
        if verdict == "charged":  # the customer is still here: the sale goes ahead
            self._journal(payments.record_outcome, self.ledger, pid, last)
            self.terminal_status = "approved"
            return self._card_approved(last, value)
        if verdict == "not_charged":
            self._journal(payments.settle, self.ledger, pid, "not_charged", "terminal: not taken")
            self.terminal_status = "aborted"
            return self._no(
                i18n._("The card payment did not go through. Try again or pay another way")
            )
        return self._terminal_silent(
            i18n._("card payment"),
            pid,
            value,
            i18n._("The card terminal does not answer. Please call staff"),
        )

    def _terminal_silent(self, what: i18n.Message, row: int, amount: Decimal, then: str) -> Outcome:
        """The terminal did not answer about a payment or refund: card payments pause
        until it is settled (asked again every SETTLE_EVERY_S) and staff are told."""
        shown = money_arg(amount, self.config)
        self.card_blocked = i18n._(
            "{what} {row} of {amount} not settled", what=what, row=str(row), amount=shown
        )
        self._alert(
            i18n._(
                "{what} of {amount} is not settled: the terminal does not answer. "
                "Check its last receipt; the kiosk keeps asking",
                what=what.sentence(),
                amount=shown,
            )
        )
        self._settle_at = self.clock()
        self.terminal_status = "failed"
        return self._no(then)

    def _after_check(self, result: TerminalResult, _context) -> Outcome:
        if not result.approved:
            self._alert(i18n._("Card terminal: {message}", message=result.message))
        return Outcome(True, self.message)

    def _journal_reversal(self, pid: int, reversal: TerminalResult) -> None:
        row = payments.record_request(
            self.ledger, "reversal", payments.get(pid).amount, self._terminal_name(), pid
        )
        payments.record_outcome(self.ledger, row, reversal)

    def _after_reverse(self, results, context) -> Outcome:
        if not isinstance(results, list):  # the driver failed: nothing is known
            results = [results] * len(context)
        failed = []
        for (pid, row, ref, _amount), result in zip(context, results, strict=True):
            self._journal(payments.record_outcome, self.ledger, row, result)
            if result.approved or result.code == 0xB4:
                self._journal(payments.settle, self.ledger, pid, "reversed", "payment cancelled")
            else:
                failed.append(ref)
                state = "refund_needed" if result.outcome == "declined" else "approved"
                self._journal(payments.settle, self.ledger, pid, state, result.message)
        if failed:
            self._alert(
                i18n._(
                    "Payment cancelled: reverse card payment(s) {refs} by hand",
                    join=", ".join(failed),
                )
            )
            return self._no(i18n._("Payment cancelled; staff will refund the card payment"))
        return self._ok(i18n._("Payment cancelled: the card payment was reversed"))

    def _reverse_call(self, receipts_no, listener) -> list:
        return [
            self.terminal.reverse(number, listener)
            if number
            else TerminalResult("declined", "no terminal receipt number: not reversed blindly")
            for number in receipts_no
        ]


def _is_ours(last: TerminalResult, amount: Decimal, known) -> bool:
    """The terminal's last transaction is the one whose answer was lost: approved, a
    receipt number the journal has not seen, and the same amount."""
    return bool(
        last.approved and last.receipt_no and last.receipt_no not in known and last.amount == amount
    )
