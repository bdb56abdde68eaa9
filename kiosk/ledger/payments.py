"""The payment journal: what the kiosk asked a card terminal, and what became of it.

A request is written (and committed) before it is sent, so a power cut at any
moment leaves a row that says a payment may be in flight. Its outcome is written
as soon as the terminal answers; an approved payment is marked committed in the
same transaction as the sale it pays. After a restart, rows still `requested`,
`unknown` or `approved` are settled: the checkout asks the terminal or reverses,
and tells staff. Only references are kept (see models.Payment), never card data.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal

from peewee import SQL

from kiosk import cardnumbers, i18n
from kiosk.ledger import audit
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Audit, Payment, utc_now

OPEN = ("requested", "unknown", "approved")  # the money's fate is not settled yet
OUTCOMES = ("approved", "declined", "aborted", "failed", "unknown")
SETTLED = ("committed", "reversed", "refund_needed", "not_charged", "resolved", "unposted")
# Needs staff: money the terminal moved that no posting accounts for yet.
STAFF_NEEDED = ("refund_needed", "unposted")
# A refund row (kind refund, or a reversal made for a return) carries its request:
# the return, exchange or void it pays out, as JSON (migration step 4).
IS_REFUND = SQL("request IS NOT NULL")
TERMINAL_EOD = "terminal_end_of_day"  # the audit action of a terminal's end of day
# A refund row whose money went back to the card (resolved: settled by hand, which
# may mean given): what still can go back is bounded by all of them.
REFUND_GIVEN = ("approved", "unposted", "committed", "resolved")
CARD_NUMBER = cardnumbers.CARD_NUMBER  # `kiosk ledger verify` looks for it
NOTE_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def mask_card_numbers(text: str) -> str:
    """`text` with card numbers masked (kiosk.cardnumbers), control characters made
    spaces, cut to NOTE_MAX: every text written to the journal."""
    return cardnumbers.mask(_CONTROL.sub(" ", str(text)), NOTE_MAX)


looks_like_card_number = cardnumbers.looks_like


def record_request(
    ledger: Ledger,
    kind: str,
    amount: Decimal,
    terminal: str,
    original: int | None = None,
    request: dict | None = None,
) -> int:
    """The request, committed before anything is sent to the terminal. A refund's
    `request` is the posting it pays out (see session.Checkout's refunds)."""
    now = utc_now()
    with ledger.transaction():
        row = Payment.create(
            created_at=now,
            updated_at=now,
            kind=kind,
            amount=amount,
            currency=ledger.config.money.currency,
            terminal=terminal[:64],
            state="requested",
            original=original,
        )
        if request is not None:
            text = json.dumps(request, separators=(",", ":"), default=str)
            ledger.db.execute_sql("UPDATE payment SET request = ? WHERE id = ?", (text, row.id))
    return row.id


def record_outcome(ledger: Ledger, payment_id: int, result) -> None:
    """The terminal's answer (a TerminalResult): its outcome and references."""
    update = {
        "state": result.outcome,
        "note": mask_card_numbers(result.message),
        "updated_at": utc_now(),
    }
    for name in ("receipt_no", "trace", "terminal_id", "approval"):
        value = getattr(result, name)
        if value:
            update[name] = value
    if result.outcome == "approved":
        update["reference"] = result.reference
    with ledger.transaction():
        Payment.update(update).where(Payment.id == payment_id).execute()


def settle(ledger: Ledger, payment_id: int, state: str, note: str | None = None, **refs) -> None:
    update = {"state": state, "updated_at": utc_now(), **refs}
    if note is not None:
        update["note"] = mask_card_numbers(note)
    with ledger.transaction():
        Payment.update(update).where(Payment.id == payment_id).execute()


def mark_committed(references: list[str], txn: str) -> None:
    """Inside the sale's own transaction: its approved card payments are now in it."""
    if references:
        Payment.update(state="committed", txn=txn, updated_at=utc_now()).where(
            Payment.reference.in_(references), Payment.state == "approved"
        ).execute()


def get(payment_id: int) -> Payment:
    return Payment.get_by_id(payment_id)


def open_payments() -> list[Payment]:
    """Payments whose money is not settled: in flight, lost, or approved without a sale.
    A reversal row only reports on its original, which stays open until it is settled
    (a reversal sent twice is refused as "already reversed", and counts as done)."""
    query = Payment.select().where(
        Payment.state.in_(OPEN), (Payment.kind != "reversal") | IS_REFUND
    )
    return list(query.order_by(Payment.id))


def known_receipts(terminal_id: str | None) -> set[str]:
    """Terminal receipt numbers the journal already accounts for."""
    query = Payment.select(Payment.receipt_no).where(Payment.receipt_no.is_null(False))
    if terminal_id:
        query = query.where(Payment.terminal_id == terminal_id)
    return {row.receipt_no for row in query}


def recent(limit: int = 20) -> list[Payment]:
    return list(Payment.select().order_by(Payment.id.desc()).limit(limit))


# ---------------------------------------------------------------- refunds


def request_of(payment_id: int) -> dict | None:
    """A refund row's request (the posting it pays out), or None."""
    cursor = Payment._meta.database.execute_sql(
        "SELECT request FROM payment WHERE id = ?", (payment_id,)
    )
    row = cursor.fetchone()
    return json.loads(row[0]) if row and row[0] else None


def is_refund(payment_id: int) -> bool:
    return request_of(payment_id) is not None


def terminal_payments(sale_number: str) -> list[Payment]:
    """The card payments the terminal made for a posted sale or exchange, in order."""
    query = Payment.select().where(
        Payment.txn == sale_number, Payment.kind == "authorize", Payment.state == "committed"
    )
    return list(query.order_by(Payment.id))


def refunds_of(payment_id: int) -> list[Payment]:
    """Refund rows made against a card payment (reversals for returns included)."""
    query = Payment.select().where(Payment.original == payment_id, IS_REFUND)
    return list(query.order_by(Payment.id))


def mark_refunds_committed(row_ids: list[int], txn: str) -> None:
    """Inside the return's (exchange's, void's) own transaction: its card refunds."""
    if row_ids:
        Payment.update(state="committed", txn=txn, updated_at=utc_now()).where(
            Payment.id.in_(row_ids), Payment.state.in_(("approved", "unposted", "resolved"))
        ).execute()


def reusable_refund(row: Payment) -> bool:
    """A refund the terminal gave that no posting holds yet: a return done again reuses
    it instead of sending it again (a resolved one too, if it was given)."""
    if row.txn is not None:
        return False
    return row.state in ("approved", "unposted") or (
        row.state == "resolved" and row.reference is not None
    )


def end_of_day_since(moment: datetime) -> bool:
    """Has the terminal closed its day (its batch) since `moment`? Then a payment of
    before cannot be reversed any more, only refunded."""
    return Audit.select().where(Audit.action == TERMINAL_EOD, Audit.ts > moment).exists()


def record_end_of_day(ledger: Ledger, staff: str | None, result) -> None:
    with ledger.transaction():
        audit.record(
            TERMINAL_EOD,
            staff,
            result.terminal_id,
            "total",
            None,
            None if result.amount is None else str(result.amount),
            result.message[:200],
        )


# ---------------------------------------------------------------- staff


def unsettled() -> list[Payment]:
    """What staff must see: payments in flight or lost, approved without their
    posting, and money the terminal moved that no posting accounts for."""
    rows = open_payments() + list(Payment.select().where(Payment.state.in_(STAFF_NEEDED)))
    return sorted(rows, key=lambda row: row.id)


def describe(row: Payment) -> str:
    """One line for staff: what it is, its amount, its state and what was last heard."""
    what = "refund" if (row.kind != "authorize" and is_refund(row.id)) else row.kind
    request = request_of(row.id) or {}
    subject = f" for {request.get('kind')} of {request.get('receipt')}" if request else ""
    receipt = f" terminal receipt {row.receipt_no}" if row.receipt_no else ""
    when = row.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    note = f": {row.note}" if row.note else ""
    return (
        f"#{row.id} {when} {what}{subject} {row.amount} {row.currency} {row.state}{receipt}{note}"
    )


def resolve(ledger: Ledger, payment_id: int, staff: str | None, reason: str) -> Payment:
    """Staff settled it by hand (refunded at the terminal, checked its receipts): the
    row becomes `resolved` with the reason, and the audit log says who and why."""
    reason = " ".join(_CONTROL.sub(" ", reason).split())
    if not reason:
        raise LedgerError(i18n._("say why: a reason is needed to resolve a payment by hand"))
    if looks_like_card_number(reason):
        raise LedgerError(i18n._("the reason looks like it holds a card number: leave it out"))
    with ledger.transaction():
        row = Payment.get_or_none(Payment.id == payment_id)
        if row is None:
            raise LedgerError(
                i18n._("no payment {payment_id} in the journal", payment_id=str(payment_id))
            )
        if row not in unsettled():
            raise LedgerError(
                i18n._(
                    "payment {payment_id} is {state}: nothing to resolve",
                    payment_id=str(payment_id),
                    state=row.state,
                )
            )
        audit.record(
            "payment_resolved", staff, f"payment {payment_id}", "state", row.state, "resolved",
            reason[:200],
        )  # fmt: skip
        Payment.update(
            state="resolved", note=f"by hand: {reason}"[:200], updated_at=utc_now()
        ).where(Payment.id == payment_id).execute()
    return Payment.get_by_id(payment_id)


def scrub_card_numbers(ledger: Ledger) -> int:
    """Mask card-number-like text that an earlier version stored in the journal's notes
    (a terminal's free text), the only free text it keeps; how many rows it changed.
    `kiosk ledger verify` checks with the same pattern."""
    changed = 0
    with ledger.transaction():
        for row in Payment.select().where(Payment.note.is_null(False)):
            if looks_like_card_number(row.note) or len(row.note) > NOTE_MAX:
                Payment.update(note=mask_card_numbers(row.note)).where(
                    Payment.id == row.id
                ).execute()
                changed += 1
    return changed
