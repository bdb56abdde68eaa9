"""The payment journal: what the kiosk asked a card terminal, and what became of it.

A request is written (and committed) before it is sent, so a power cut at any
moment leaves a row that says a payment may be in flight. Its outcome is written
as soon as the terminal answers; an approved payment is marked committed in the
same transaction as the sale it pays. After a restart, rows still `requested`,
`unknown` or `approved` are settled: the checkout asks the terminal or reverses,
and tells staff. Only references are kept (see models.Payment), never card data.
"""

from __future__ import annotations

from decimal import Decimal

from kiosk.ledger.core import Ledger
from kiosk.ledger.models import Payment, utc_now

OPEN = ("requested", "unknown", "approved")  # the money's fate is not settled yet
OUTCOMES = ("approved", "declined", "aborted", "failed", "unknown")
SETTLED = ("committed", "reversed", "refund_needed", "not_charged")


def record_request(
    ledger: Ledger,
    kind: str,
    amount: Decimal,
    terminal: str,
    original: int | None = None,
) -> int:
    """The request, committed before anything is sent to the terminal."""
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
    return row.id


def record_outcome(ledger: Ledger, payment_id: int, result) -> None:
    """The terminal's answer (a TerminalResult): its outcome and references."""
    update = {
        "state": result.outcome,
        "note": result.message[:200],
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
        update["note"] = note[:200]
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
    query = Payment.select().where(Payment.state.in_(OPEN), Payment.kind != "reversal")
    return list(query.order_by(Payment.id))


def known_receipts(terminal_id: str | None) -> set[str]:
    """Terminal receipt numbers the journal already accounts for."""
    query = Payment.select(Payment.receipt_no).where(Payment.receipt_no.is_null(False))
    if terminal_id:
        query = query.where(Payment.terminal_id == terminal_id)
    return {row.receipt_no for row in query}


def recent(limit: int = 20) -> list[Payment]:
    return list(Payment.select().order_by(Payment.id.desc()).limit(limit))
