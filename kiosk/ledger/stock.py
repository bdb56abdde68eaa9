"""Back-of-house postings: receiving, adjustments, cycle counts and kit assembly.

Stock is in base units (pieces, or grams for kg items). Balances may go negative:
the shelf is the truth, and a till must never refuse a customer over bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from peewee import fn

from kiosk import i18n, numbers
from kiosk.ledger import audit, catalog
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import StockBalance, StockMove, ts_text, utc_now
from kiosk.ledger.posting import MAIN, LineRow, Posted, Posting, write

ADJUST_REASONS = ("damaged", "theft", "expired", "found", "correction", "sample", "other")
ZERO = Decimal(0)


@dataclass(frozen=True)
class ReceiveLine:
    sku: str
    qty: int
    cost: Decimal | None = None
    lot: str | None = None


def _stock_line(line_no: int, sku: str, qty: Decimal, **extra) -> LineRow:
    return LineRow(
        line_no=line_no,
        sku=sku,
        qty=qty,
        unit_price=extra.pop("unit_price", ZERO),
        tax_code="",
        tax_rate=ZERO,
        gross=ZERO,
        discount=ZERO,
        net=ZERO,
        tax=ZERO,
        total=ZERO,
        **extra,
    )


def _whole(qty: object, what: str, limit: int = numbers.MAX_STOCK_QTY) -> int:
    """A whole number of base units within the documented bound (kiosk.numbers)."""
    if not isinstance(qty, int) or isinstance(qty, bool):
        raise LedgerError(
            i18n._(
                "{what} must be a whole number of base units, not {qty!r}",
                what=what,
                qty=str(qty)[:40],
            )
        )
    try:
        return numbers.whole(qty, what, minimum=-limit, maximum=limit)
    except numbers.NumberError as exc:
        raise LedgerError(str(exc)) from None


def on_hand(sku: str, location: str = MAIN) -> int:
    row = StockBalance.get_or_none((StockBalance.sku == sku) & (StockBalance.location == location))
    return row.on_hand if row else 0


def expected_at(sku: str, moment: datetime) -> int:
    """What the ledger held at `moment`: every move that took effect by then."""
    total = (
        StockMove.select(fn.SUM(StockMove.delta))
        .where(
            (StockMove.sku == sku)
            & (StockMove.location == MAIN)
            & (StockMove.at <= ts_text(moment))
        )
        .scalar()
    )
    return total or 0


def receive(
    ledger: Ledger, lines: Sequence[ReceiveLine], staff: str | None, reference: str | None = None
) -> Posted:
    """Goods in from a supplier (delivery note `reference`)."""
    if not lines:
        raise LedgerError(i18n._("receiving needs at least one line"))
    with ledger.transaction():
        rows, moves = [], []
        for line_no, line in enumerate(lines, start=1):
            catalog.get_item(line.sku)
            qty = _whole(line.qty, f"{line.sku} quantity")
            if qty <= 0:
                raise LedgerError(
                    i18n._("{sku}: received quantity must be above zero", sku=line.sku)
                )
            if line.cost is not None and line.cost < 0:
                raise LedgerError(i18n._("{sku}: cost must be zero or more", sku=line.sku))
            rows.append(
                _stock_line(line_no, line.sku, Decimal(qty), unit_price=line.cost or ZERO,
                            lot=line.lot)
            )  # fmt: skip
            moves.append((line.sku, MAIN, qty))
        return write(
            ledger, Posting("receive", staff=staff, lines=rows, moves=moves, note=reference)
        )


def adjust(ledger: Ledger, sku: str, delta: int, reason: str, staff: str | None) -> Posted:
    """A stock correction with a reason (breakage, theft, found ...)."""
    if reason not in ADJUST_REASONS:
        raise LedgerError(
            i18n._("adjustment reason must be one of {choices}", choices=", ".join(ADJUST_REASONS))
        )
    delta = _whole(delta, "adjustment")
    if delta == 0:
        raise LedgerError(i18n._("an adjustment of zero changes nothing"))
    with ledger.transaction():
        catalog.get_item(sku)
        audit.record("adjust", staff, sku, "on_hand", None, delta, reason)
        return write(
            ledger,
            Posting(
                "adjust",
                staff=staff,
                lines=[_stock_line(1, sku, Decimal(delta))],
                moves=[(sku, MAIN, delta)],
                reason=reason,
            ),
        )


def count(
    ledger: Ledger,
    counted: Mapping[str, int],
    staff: str | None,
    counted_at: datetime | Mapping[str, datetime] | None = None,
) -> Posted:
    """A cycle count: what was on the shelf when each SKU was counted.

    `counted_at` is one moment for all, or one per SKU (a count session scans shelf
    after shelf). Each adjustment is counted minus what the ledger expected at that
    SKU's moment and takes effect then, so a sale rung up between counting and
    posting is not overwritten: it still counts after.
    """
    if not counted:
        raise LedgerError(i18n._("a count needs at least one item"))
    now = utc_now()
    if counted_at is None or isinstance(counted_at, datetime):
        moments = dict.fromkeys(counted, counted_at or now)
    else:
        moments = {sku: counted_at.get(sku, now) for sku in counted}
    for sku, moment in moments.items():
        if moment.tzinfo is None:
            raise LedgerError(i18n._("counted_at must carry a time zone"))
        if moment > now + timedelta(seconds=5):
            raise LedgerError(i18n._("{sku}: counted_at is in the future", sku=sku))
        moments[sku] = moment.astimezone(UTC)
    with ledger.transaction():
        rows, moves = [], []
        for line_no, (sku, qty) in enumerate(sorted(counted.items()), start=1):
            catalog.get_item(sku)
            qty = _whole(qty, f"{sku} count")
            if qty < 0:
                raise LedgerError(i18n._("{sku}: a counted quantity cannot be negative", sku=sku))
            delta = qty - expected_at(sku, moments[sku])
            rows.append(_stock_line(line_no, sku, Decimal(qty)))
            moves.append((sku, MAIN, delta))
        return write(
            ledger,
            Posting(
                "count",
                staff=staff,
                lines=rows,
                moves=moves,
                effective_at=min(moments.values()),
                counted=dict(sorted(counted.items())),
                counted_at=moments,
            ),
        )


def build_kit(
    ledger: Ledger, kit_sku: str, qty: int, staff: str | None, lot: str | None = None
) -> Posted:
    """Assemble `qty` kits: consume the components of the current BOM version, add kits."""
    qty = _whole(qty, "kit quantity", numbers.MAX_PIECES)
    if qty <= 0:
        raise LedgerError(i18n._("build at least one kit"))
    with ledger.transaction():
        kit = catalog.get_item(kit_sku)
        if not kit.kit:
            raise LedgerError(i18n._("{kit_sku} is not a kit item", kit_sku=kit_sku))
        bom, components = catalog.current_bom(kit_sku)
        moves = [(c.component_id, MAIN, -qty * c.qty) for c in components]
        moves.append((kit_sku, MAIN, qty))
        rows = [_stock_line(1, kit_sku, Decimal(qty), bom_id=bom.id, lot=lot)]
        return write(
            ledger,
            Posting("kit_build", staff=staff, lines=rows, moves=moves, note=f"bom v{bom.version}"),
        )
