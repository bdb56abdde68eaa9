"""Money back to a card: a return's, exchange's or void's card part paid out at the
terminal (reversal or refund), journaled first, posted once every part is approved.
Shared by the returns flow and the restart's recovery (`post_request`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kiosk import i18n
from kiosk.checkout.core import SUPERVISOR, Outcome, PendingPayment, _sentence, kind_name
from kiosk.checkout.report_text import money_arg
from kiosk.drivers.payment import TerminalResult
from kiosk.ledger import audit, payments, sales
from kiosk.ledger.core import Ledger, LedgerError, StorageFullError
from kiosk.ledger.money import CASH, ZERO, Tender, round_cash
from kiosk.ledger.posting import Posted


@dataclass
class CardRefund:
    """One card part of a refund: what goes back to one card payment of the original
    sale, by reversal (same day, before the terminal's end of day, the whole payment)
    or by refund (the customer presents the card)."""

    original: int  # the authorize row in the payment journal
    amount: Decimal
    receipt_no: str | None  # the original's terminal receipt: what a reversal names
    reverse: bool
    row: int | None = None  # the journal row of the refund or reversal being made
    reference: str | None = None  # set once the terminal approved it


@dataclass
class PendingRefund:
    """A return, exchange or void waiting for its card refunds at the terminal. It is
    posted once every card part is approved; `request` is journaled with each refund
    row, so a restart can post it (payments.request_of)."""

    kind: str  # return, exchange, void
    receipt: str | None
    amount: Decimal  # the whole refund, positive
    request: dict[str, Any]
    others: list[Tender]  # the tenders not paid out by the terminal (cash, voucher, ...)
    parts: list[CardRefund]
    group: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


class _RefundBlocked(Exception):
    """A card refund cannot be planned now (an earlier one is not settled)."""


def post_request(ledger: Ledger, request: dict[str, Any], refunds) -> Posted:
    """Post a refund's return, exchange or void as journaled with its card refunds
    (`refunds`: (amount, reference) each, amount positive): card first, then the rest
    as planned. Runs inside the caller's transaction; used again after a restart."""
    tenders = [Tender("card", -Decimal(amount), reference) for amount, reference in refunds]
    tenders += [Tender(k, Decimal(a), ref) for k, a, ref in request.get("tenders", [])]
    kind, receipt, staff = request["kind"], request.get("receipt"), request.get("staff")
    if kind == "void":
        return sales.post_void(ledger, receipt, staff, request.get("reason", "post_void"), tenders)
    lines = [
        sales.ReturnLine(li["sku"], Decimal(li["qty"]), li.get("condition", "resaleable"))
        for li in request["lines"]
    ]
    reason = request.get("reason", "unwanted")
    if kind == "exchange":
        sold = [_sale_line(li) for li in request.get("sold", [])]
        return sales.post_exchange(ledger, receipt, lines, sold, tenders, staff, reason)
    return sales.post_return(ledger, lines, reason, staff, receipt=receipt, tenders=tenders)


def _sale_line_json(line: sales.SaleLine) -> dict[str, Any]:
    return {
        "sku": line.sku,
        "qty": str(line.qty),
        "price": None if line.price is None else str(line.price),
        "discount": str(line.discount),
        "amount": None if line.amount is None else str(line.amount),
        "barcode": line.barcode,
        "lot": line.lot,
    }


def _sale_line(data: dict[str, Any]) -> sales.SaleLine:
    def number(key: str) -> Decimal | None:
        return None if data.get(key) is None else Decimal(data[key])

    return sales.SaleLine(
        data["sku"],
        Decimal(data["qty"]),
        number("price"),
        number("discount") or ZERO,
        number("amount"),
        data.get("barcode"),
        data.get("lot"),
    )


class RefundsMixin:
    """A refund waiting for the terminal: its parts, retries, cash instead, cancelling."""

    def _terminal_parts(
        self, receipt: str | None, tenders: list[Tender]
    ) -> tuple[list[Tender], list[CardRefund]]:
        """Split the card part of a refund over the original's terminal payments; what
        they cannot take stays a card tender that staff refund by hand, as before."""
        originals = payments.terminal_payments(receipt) if receipt else []
        if not originals or self.terminal.kind == "manual":
            return tenders, []
        others: list[Tender] = []
        parts: list[CardRefund] = []
        used: set[int] = set()
        today = self.clock().astimezone().date()
        for tender in tenders:
            if tender.kind != "card" or tender.amount >= 0:
                others.append(tender)
                continue
            left = -tender.amount
            for paid in originals:
                refunds = payments.refunds_of(paid.id)
                if any(r.state in ("requested", "unknown") for r in refunds):
                    raise _RefundBlocked(
                        i18n._(
                            "A card refund for receipt {receipt} is not settled yet: ask the "
                            "terminal again or resolve it (staff menu, card payments)",
                            receipt=receipt,
                        )
                    )
                for r in refunds:  # given at the terminal, never posted: reused
                    if payments.reusable_refund(r) and r.id not in used and r.amount <= left:
                        used.add(r.id)
                        part = CardRefund(paid.id, r.amount, paid.receipt_no, False, r.id)
                        part.reference = r.reference
                        parts.append(part)
                        left -= r.amount
                # Everything that went back to the card bounds what still can: resolved
                # rows too (money given, settled by hand), never a second time.
                given = [r for r in refunds if r.state in payments.REFUND_GIVEN]
                done = sum((r.amount for r in given), ZERO)
                take = min(left, paid.amount - done)
                if take <= 0:
                    continue
                reverse = (
                    take == paid.amount
                    and not given
                    and paid.receipt_no is not None
                    and paid.created_at.astimezone().date() == today
                    and not payments.end_of_day_since(paid.created_at)
                )
                parts.append(CardRefund(paid.id, take, paid.receipt_no, reverse))
                left -= take
            if left > 0:
                others.append(Tender("card", -left, None))
        return others, parts

    def _refund_at_terminal(
        self, kind: str, receipt: str | None, amount: Decimal, tenders, request
    ) -> Outcome | None:
        """Start paying a refund's card part out at the terminal; None when it has no
        card part the terminal made (the caller posts as it always did)."""
        if self.refunding is not None:
            if self.terminal_job is not None or any(p.reference for p in self.refunding.parts):
                return self._next_refund()  # part of it is given: finish that one
            self.refunding = None  # nothing given yet: the new plan replaces it
        try:
            others, parts = self._terminal_parts(receipt, list(tenders))
        except _RefundBlocked as exc:
            return self._no(str(exc))
        if not parts:
            return None
        request = {**request, "staff": self._staff_code()}
        self.refunding = PendingRefund(kind, receipt, amount, request, others, parts)
        return self._next_refund()

    def _journal_request(self, pending: PendingRefund) -> dict[str, Any]:
        return {
            **pending.request,
            "group": pending.group,
            "tenders": [[t.kind, str(t.amount), t.reference] for t in pending.others],
            "parts": [[p.original, str(p.amount)] for p in pending.parts],
        }

    def _next_refund(self) -> Outcome:
        pending = self.refunding
        todo = [p for p in pending.parts if p.reference is None]
        if not todo:
            return self._post_refund()
        if self.terminal_job is not None:
            return self._no(i18n._("The card terminal is busy: wait for it, then try again"))
        part = todo[0]
        if part.row is not None and payments.get(part.row).state in ("requested", "unknown"):
            # its answer was lost: ask the terminal, never send a second refund
            self.terminal_status = "processing"
            self._start_job("refund_settle", self.terminal.last_transaction, context=part)
            return self._ok(i18n._("Asking the card terminal about the refund"))
        if self.card_blocked:
            self._alert(i18n._("Card refunds wait: {card_blocked}", card_blocked=self.card_blocked))
            return self._no(
                i18n._(
                    "The card refund is not possible right now: the {kind} is not posted. A "
                    "supervisor can refund in cash instead",
                    kind=kind_name(pending.kind),
                )
            )
        kind = "reversal" if part.reverse else "refund"
        row = self._journal_first(
            i18n._("Card refund is not possible: this kiosk's storage is full"),
            i18n._("Card refund is not possible"),
            (
                kind,
                part.amount,
                self._terminal_name(),
                part.original,
                self._journal_request(pending),
            ),
        )
        if isinstance(row, Outcome):
            return row
        part.row = row
        self.terminal_status, self.terminal_texts = "follow", ()
        if part.reverse:
            self._start_job("refund_card", self.terminal.reverse, part.receipt_no, context=part)
            how = i18n._("cancelling the card payment on the terminal")
        else:
            self._start_job("refund_card", self.terminal.refund, part.amount, context=part)
            how = i18n._("the customer presents the card at the terminal")
        self._emit("payment", kind="card", status="refund", amount=str(part.amount))
        return self._ok(
            i18n._(
                "Refund {amount} to the card: {how}",
                amount=money_arg(part.amount, self.config),
                how=how,
            )
        )

    def _after_refund_card(self, result: TerminalResult, part: CardRefund) -> Outcome:
        self._journal(payments.record_outcome, self.ledger, part.row, result)
        self.terminal_status, self.terminal_texts = result.outcome, ()
        kind = self.refunding.kind if self.refunding else "return"
        if result.approved and result.amount is not None and result.amount != part.amount:
            return self._refund_wrong_amount(part, result)
        if result.approved:
            return self._card_refunded(part, result)
        if result.outcome == "unknown":
            return self._ask_what_happened("refund", part.amount, result, "refund_settle", part)
        part.row = None
        if part.reverse and result.outcome == "declined":  # too late to cancel: refund it
            part.reverse = False
            return self._next_refund()
        if result.outcome == "failed":
            self._alert(i18n._("Card terminal: {message}", message=result.message))
        word = {"aborted": i18n._("cancelled"), "failed": i18n._("not possible")}.get(
            result.outcome, i18n._("declined")
        )
        return self._no(
            i18n._(
                "Card refund {word} ({message}): the {kind} is not posted. Try again, "
                "or a supervisor can refund in cash instead",
                word=word,
                message=result.message,
                kind=kind_name(kind),
            )
        )

    def _refund_wrong_amount(self, part: CardRefund, result: TerminalResult) -> Outcome:
        """The terminal gave back another amount than asked: the row keeps what it gave
        (so it bounds what can still go back, and Finish again reuses it), the return
        is not posted, staff are told."""
        gave, asked = money_arg(result.amount, self.config), money_arg(part.amount, self.config)
        note = i18n._("the terminal refunded {gave} instead of {asked}", gave=gave, asked=asked)
        self._journal(
            payments.settle, self.ledger, part.row, "unposted", note, amount=result.amount
        )
        self._alert(
            i18n._(
                "Card refund {row}: {note} (terminal receipt {receipt_no}). Check the terminal; "
                "Finish the return again to refund the rest",
                row=str(part.row),
                note=note,
                receipt_no=result.receipt_no,
            )
        )
        kind = self.refunding.kind if self.refunding else "return"
        for other in self.refunding.parts if self.refunding else []:
            if other.reference and other.row:  # given: kept, reused when it is done again
                self._journal(
                    payments.settle, self.ledger, other.row, "unposted", "given; return stopped"
                )
        self.refunding = None  # done again, the plan counts what was given
        return self._no(
            i18n._(
                "Card refund: {note}. The {kind} is not posted: call staff",
                note=note,
                kind=kind_name(kind),
            )
        )

    def _card_refunded(self, part: CardRefund, result: TerminalResult) -> Outcome:
        part.reference = result.reference
        if result.customer_receipt:
            self._slips.append(result.customer_receipt)
        if result.merchant_receipt and self.config.payment.print_merchant_receipt:
            self._print_slip("Card refund (merchant copy)", result.merchant_receipt)
        if self.refunding is None:  # pragma: no cover - cleared only after posting
            return self._ok(i18n._("Card refund approved"))
        return self._next_refund()

    def _after_refund_settle(self, last: TerminalResult, part: CardRefund) -> Outcome:
        verdict = self._judge(part.amount, last)
        if verdict != "unreachable" and not any(
            row.state in ("requested", "unknown") and row.id != part.row
            for row in payments.open_payments()
        ):
            self.card_blocked = None
        if verdict == "charged":
            self._journal(payments.record_outcome, self.ledger, part.row, last)
            self.terminal_status = "approved"
            return self._card_refunded(part, last)
        if verdict == "not_charged":
            self._journal(payments.settle, self.ledger, part.row, "not_charged", "not refunded")
            part.row = None
            self.terminal_status = "aborted"
            return self._no(
                i18n._(
                    "The card refund did not go through. Try again, or a supervisor can refund in "
                    "cash instead"
                )
            )
        return self._terminal_silent(
            i18n._("card refund"),
            part.row,
            part.amount,
            i18n._("The card terminal does not answer. The refund waits: please call staff"),
        )

    def _post_refund(self) -> Outcome:
        pending = self.refunding
        refunds = [(p.amount, p.reference) for p in pending.parts]
        try:
            with self.ledger.transaction():  # the posting and its card refunds, together
                posted = post_request(self.ledger, self._journal_request(pending), refunds)
                payments.mark_refunds_committed([p.row for p in pending.parts], posted.number)
        except StorageFullError as exc:
            self._storage_failed(exc)
            return self._no(
                i18n._(
                    "Could not record the {kind}: this kiosk's storage is full. The card refund "
                    "is journaled and posted once there is space. Call staff.",
                    kind=kind_name(pending.kind),
                )
            )
        except LedgerError as exc:
            self._alert(
                i18n._(
                    "Card refund given but the {kind} was not posted: {error}",
                    kind=kind_name(pending.kind),
                    error=exc,
                )
            )
            return self._no(
                i18n._(
                    "Could not post the {kind}: {error}",
                    kind=kind_name(pending.kind),
                    error=_sentence(exc),
                )
            )
        self.refunding = None
        self.payment = PendingPayment()
        slips, self._slips = self._slips, []
        outcome = self._after_refund(posted)
        for slip in slips:  # the terminal's refund receipt, after ours
            self._print_slip("Card refund", slip)
        return outcome

    def retry_refund(self) -> Outcome:
        """After a declined or cancelled card refund: ask the terminal again."""
        self._record({"refund": "retry"})
        if self.refunding is None:
            return self._no(i18n._("No refund is waiting"))
        return self._next_refund()

    def refund_cash(self) -> Outcome:
        """The card refund was declined (or the terminal is out): a supervisor pays the
        rest in cash instead. Card parts the terminal already approved stay as they are."""
        self._record({"refund": "cash"})
        if self.refunding is None:
            return self._no(i18n._("No refund is waiting"))
        if self.terminal_job is not None:
            return self._no(i18n._("The card terminal is still working: wait for its answer"))
        for part in self.refunding.parts:
            unsettled = part.row and payments.get(part.row).state in ("requested", "unknown")
            if unsettled and part.reference is None:
                return self._no(
                    i18n._("The card refund is not settled yet: ask the terminal again first")
                )
        return self._ask_staff(
            "refund_cash", (), SUPERVISOR, i18n._("A cash refund instead of the card")
        )

    def _approved_refund_cash(self) -> Outcome:
        pending = self.refunding
        if pending is None:
            return self._no(i18n._("No refund is waiting"))
        done = [p for p in pending.parts if p.reference is not None]
        card = sum((p.amount for p in pending.parts if p.reference is None), ZERO)
        non_cash = [t for t in pending.others if t.kind != CASH]
        exact = pending.amount + sum((t.amount for t in non_cash), ZERO)
        exact -= sum((p.amount for p in done), ZERO)
        policy = self.ledger.policy
        cash = round_cash(exact, policy.cash_step, policy.unit)
        pending.others = [*non_cash, *([Tender(CASH, -cash)] if cash else [])]
        pending.parts = done
        audit.record(
            "refund_cash", self._staff_code(), pending.receipt, "card", str(card), str(cash)
        )
        return self._post_refund()

    def cancel_refund(self) -> Outcome:
        """Give up a refund that waits for the terminal; not once a card part was given."""
        self._record({"refund": "cancel"})
        if self.refunding is None:
            return self._no(i18n._("No refund is waiting"))
        if self.terminal_job is not None:
            return self._no(i18n._("The card terminal is still working: wait for its answer"))
        if any(p.reference for p in self.refunding.parts):
            return self._no(
                i18n._("Part of it is already refunded to the card: finish it (cash for the rest)")
            )
        self.refunding = None
        return self._ok(i18n._("Refund cancelled: nothing was posted or refunded"))
