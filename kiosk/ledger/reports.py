"""End-of-day (Z) report and stock listings, as plain data for the CLI and screens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from kiosk.ledger.models import Item, StockBalance, Tender, Txn, TxnLine, ts_text
from kiosk.ledger.money import CASH

ZERO = Decimal(0)
MONEY_KINDS = ("sale", "return", "void", "exchange")


@dataclass
class ZReport:
    day: date
    start: datetime
    end: datetime
    counts: dict[str, int] = field(default_factory=dict)
    gross_sales: Decimal = ZERO  # sold lines (returns and voids not netted)
    returns: Decimal = ZERO  # refunded lines (negative)
    voids: Decimal = ZERO  # voided sales (negative)
    discounts: Decimal = ZERO
    net_total: Decimal = ZERO  # everything taken in, tax included
    rounding: Decimal = ZERO
    tenders: dict[str, Decimal] = field(default_factory=dict)  # net of change
    taxes: dict[str, tuple[Decimal, Decimal, Decimal]] = field(default_factory=dict)
    opening_float: Decimal = ZERO
    first_receipt: str | None = None
    last_receipt: str | None = None

    @property
    def cash_expected(self) -> Decimal:
        """What the drawer should hold: float plus cash in less cash out and change."""
        return self.opening_float + self.tenders.get(CASH, ZERO)


def day_bounds(day: date, zone: tzinfo | None) -> tuple[datetime, datetime]:
    """A local calendar day as a UTC interval (receipts and reports are local time)."""
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return start, end


def local_zone() -> tzinfo:
    return datetime.now().astimezone().tzinfo or UTC


def z_report(day: date, opening_float: Decimal = ZERO, zone: tzinfo | None = None) -> ZReport:
    zone = zone or local_zone()
    start, end = day_bounds(day, zone)
    report = ZReport(day=day, start=start, end=end, opening_float=opening_float)
    window = (Txn.ts >= ts_text(start)) & (Txn.ts < ts_text(end)) & Txn.kind.in_(MONEY_KINDS)
    txns = list(Txn.select().where(window).order_by(Txn.id))
    if not txns:
        return report
    report.first_receipt, report.last_receipt = txns[0].number, txns[-1].number
    counts: dict[str, int] = defaultdict(int)
    tenders: dict[str, Decimal] = defaultdict(lambda: ZERO)
    taxes: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for txn in txns:
        counts[txn.kind] += 1
        report.net_total += txn.total + txn.rounding
        report.rounding += txn.rounding
        tenders[CASH] -= txn.change
    ids = [t.id for t in txns]
    kinds = {t.id: t.kind for t in txns}
    for line in TxnLine.select().where(TxnLine.txn.in_(ids)):
        kind = kinds[line.txn_id]
        if kind == "void":
            report.voids += line.total
        elif line.qty < 0:
            report.returns += line.total
        else:
            report.gross_sales += line.total
            report.discounts += line.discount
        rate = taxes[line.tax_code]
        rate[0] = line.tax_rate
        rate[1] += line.net
        rate[2] += line.tax
    for tender in Tender.select().where(Tender.txn.in_(ids)):
        tenders[tender.kind] += tender.amount
    report.counts = dict(counts)
    report.tenders = {k: v for k, v in sorted(tenders.items()) if v or k == CASH}
    report.taxes = {code: tuple(v) for code, v in sorted(taxes.items())}
    return report


@dataclass(frozen=True)
class StockRow:
    sku: str
    name: str
    unit: str
    locations: dict[str, int]

    @property
    def on_hand(self) -> int:
        return self.locations.get("main", 0)


def stock(sku: str | None = None) -> list[StockRow]:
    items = Item.select().order_by(Item.sku)
    if sku is not None:
        items = items.where(Item.sku == sku)
    balances: dict[str, dict[str, int]] = defaultdict(dict)
    query = StockBalance.select()
    if sku is not None:
        query = query.where(StockBalance.sku == sku)
    for row in query:
        balances[row.sku][row.location] = row.on_hand
    return [StockRow(i.sku, i.name, i.unit, balances.get(i.sku, {})) for i in items]
