"""Writing one posted transaction: the hot path of every sale.

`write` inserts the transaction, its lines, tenders and stock moves, updates the
on-hand balances and appends the stock event (and, for money, the transaction's
journal: kiosk.ledger.journal) to the outbox, all inside the
caller's `BEGIN IMMEDIATE` transaction. It uses prepared SQL with executemany
rather than per-row ORM saves: the ORM's per-row cost, not the disk, would
otherwise dominate (see bench/ledger_bench.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kiosk import clock, i18n, numbers
from kiosk.ledger import journal
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import ts_text, utc_now

KINDS = ("sale", "return", "void", "exchange", "adjust", "count", "receive", "kit_build")
MAIN = "main"
DAMAGED = "damaged"
ZERO = Decimal(0)


@dataclass
class LineRow:
    line_no: int
    sku: str
    qty: Decimal
    unit_price: Decimal
    tax_code: str
    tax_rate: Decimal
    gross: Decimal
    discount: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal
    barcode: str | None = None
    bom_id: int | None = None
    ref_line_id: int | None = None
    condition: str | None = None
    lot: str | None = None


@dataclass
class Posting:
    kind: str
    staff: str | None = None
    lines: list[LineRow] = field(default_factory=list)
    tenders: list[tuple[str, Decimal, str | None]] = field(default_factory=list)
    moves: list[tuple[str, str, int]] = field(default_factory=list)  # sku, location, delta
    ref_id: int | None = None
    net: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO
    discount: Decimal = ZERO
    rounding: Decimal = ZERO
    change: Decimal = ZERO
    reason: str | None = None
    note: str | None = None
    effective_at: datetime | None = None  # counts: when counting began
    counted: dict[str, int] | None = None
    counted_at: dict[str, datetime] | None = None  # counts: when each SKU was counted


@dataclass(frozen=True)
class Posted:
    id: int
    number: str
    kind: str
    ts: datetime
    seq: int
    total: Decimal
    rounding: Decimal
    change: Decimal

    @property
    def due(self) -> Decimal:
        return self.total + self.rounding


_TXN_SQL = (
    "INSERT INTO txn (id, number, kind, ts, staff, ref_id, net, tax, total, discount, "
    "rounding, change, reason, note, effective_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LINE_SQL = (
    "INSERT INTO txn_line (txn_id, line_no, sku, qty, unit_price, tax_code, tax_rate, gross, "
    "discount, net, tax, total, barcode, bom_id, ref_line_id, condition, lot) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TENDER_SQL = "INSERT INTO tender (txn_id, kind, amount, reference) VALUES (?, ?, ?, ?)"
_MOVE_SQL = "INSERT INTO stock_move (txn_id, sku, location, delta, at) VALUES (?, ?, ?, ?, ?)"
_BALANCE_SQL = (
    "INSERT INTO stock_balance (sku, location, on_hand) VALUES (?, ?, ?) "
    "ON CONFLICT (sku, location) DO UPDATE SET on_hand = on_hand + excluded.on_hand"
)
_OUTBOX_SQL = (
    "INSERT INTO outbox (seq, txn_id, kind, payload, created_at, state, attempts) "
    "VALUES (?, ?, ?, ?, ?, 'pending', 0)"
)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def event_moves(moves: list[tuple[str, str, int]]) -> list[dict]:
    """Net change per SKU of sellable (main location) stock, as the contract carries it."""
    totals: dict[str, int] = defaultdict(int)
    for sku, location, delta in moves:
        if location == MAIN:
            totals[sku] += delta
    return [{"sku": sku, "delta": delta} for sku, delta in sorted(totals.items()) if delta]


_TOO_MANY_LINES = i18n.N_("{lines} items in one transaction; at most {most}: split it")
_TOO_MANY_UNITS = i18n.N_("{biggest} units of one item in one transaction; at most {most}")


def _check_event(event: dict, payload: str) -> None:
    """Refuse (roll back) a transaction whose stock event the controller would refuse:
    the shop's stock must never silently miss it."""
    lines = max(len(event["moves"]), len(event.get("counted") or ()))
    biggest = max((abs(m["delta"]) for m in event["moves"]), default=0)
    if lines > (most := numbers.MAX_EVENT_LINES):
        raise LedgerError(i18n._(_TOO_MANY_LINES, lines=lines, most=most))
    if biggest > (most := numbers.MAX_STOCK_QTY):
        raise LedgerError(i18n._(_TOO_MANY_UNITS, biggest=biggest, most=most))
    if len(payload) > numbers.MAX_EVENT_BYTES:  # json.dumps writes ASCII: chars are bytes
        raise LedgerError(i18n._("too much in one transaction for one stock event: split it"))


def write(ledger: Ledger, posting: Posting) -> Posted:
    """Post inside the caller's transaction; returns the receipt number and event seq."""
    assert posting.kind in KINDS, posting.kind
    now = utc_now()
    ts = ts_text(now)
    cursor = ledger.db.cursor()
    txn_id = ledger.next_value("txn")
    number = f"{ledger.device}-{txn_id:06d}"
    effective = ts_text(posting.effective_at) if posting.effective_at else None
    cursor.execute(
        _TXN_SQL,
        (
            txn_id, number, posting.kind, ts, posting.staff, posting.ref_id,
            str(posting.net), str(posting.tax), str(posting.total), str(posting.discount),
            str(posting.rounding), str(posting.change), posting.reason, posting.note, effective,
        ),
    )  # fmt: skip
    if posting.lines:
        cursor.executemany(
            _LINE_SQL,
            [
                (
                    txn_id, li.line_no, li.sku, str(li.qty), str(li.unit_price), li.tax_code,
                    str(li.tax_rate), str(li.gross), str(li.discount), str(li.net), str(li.tax),
                    str(li.total), li.barcode, li.bom_id, li.ref_line_id, li.condition, li.lot,
                )
                for li in posting.lines
            ],
        )  # fmt: skip
    if posting.tenders:
        cursor.executemany(
            _TENDER_SQL,
            [(txn_id, kind, str(amount), ref) for kind, amount, ref in posting.tenders],
        )
    moves = [m for m in posting.moves if m[2]]
    moment = {sku: ts_text(at) for sku, at in (posting.counted_at or {}).items()}
    if moves:
        at = effective or ts
        cursor.executemany(
            _MOVE_SQL,
            [(txn_id, sku, loc, delta, moment.get(sku, at)) for sku, loc, delta in moves],
        )
        cursor.executemany(_BALANCE_SQL, moves)
    seq = ledger.next_value("seq")
    event = {
        "v": 1,
        "device": ledger.device,
        "seq": seq,
        "id": f"{ledger.device}:{seq}",
        "ts": ts,
        "kind": posting.kind,
        "txn": number,
        "moves": event_moves(moves),
        "clock": clock.mark(),  # "unsynced": made before NTP set the clock (kiosk/clock.py)
    }
    if posting.counted is not None:
        event["counted"] = posting.counted
        event["counted_at"] = {sku: moment.get(sku, effective) for sku in posting.counted}
    payload = json.dumps(event, separators=(",", ":"))
    _check_event(event, payload)
    cursor.execute(_OUTBOX_SQL, (seq, txn_id, posting.kind, payload, ts))
    journal.append(
        cursor, posting, ledger.device, seq, number, ts, event["clock"],
        ledger.config.money.currency,
    )  # fmt: skip
    return Posted(
        id=txn_id,
        number=number,
        kind=posting.kind,
        ts=now,
        seq=seq,
        total=posting.total,
        rounding=posting.rounding,
        change=posting.change,
    )
