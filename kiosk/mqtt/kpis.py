"""The figures a shop manager acts on, for a day, a week or any range, shop-wide and per
kiosk, from the controller's store: the transaction journal (kiosk.mqtt.journal_store)
for money, moves and counts for stock, applied events for sync. Plain data; the web
view (kiosk/mqtt/web/kpis.py) draws it. Definitions: README, "KPIs".

Money is summed as Decimal from the journal's decimal text (exact, and no 64-bit sum can
overflow); stock in base units (pieces or grams) as the controller keeps it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from peewee import fn

from kiosk.mqtt.store import (
    AppliedEvent,
    CountRecord,
    JournalLine,
    JournalTxn,
    KioskState,
    MasterItem,
    Move,
    StockLevel,
    ts,
)

ZERO = Decimal(0)
SOLD_KINDS = ("sale", "return", "void", "exchange")  # stock moves that are selling
MAX_DAYS = 366  # the longest range one request may ask for


class PeriodError(ValueError):
    """A period that cannot be reported on; the text says why."""


@dataclass(frozen=True)
class Period:
    first: date  # local calendar days, inclusive
    last: date
    zone: tzinfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        next_day = self.last + timedelta(days=1)
        return datetime.combine(next_day, time.min, tzinfo=self.zone).astimezone(UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def label(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()} to {self.last.isoformat()}"


def period(kind: str, day: date, last: date | None = None, zone: tzinfo | None = None) -> Period:
    """ "day" (that day), "week" (Monday to Sunday around it) or "range" (day to last)."""
    zone = zone or datetime.now().astimezone().tzinfo or UTC
    if kind == "day":
        return Period(day, day, zone)
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return Period(monday, monday + timedelta(days=6), zone)
    if kind == "range":
        if last is None:
            raise PeriodError("a range needs its last day")
        if last < day:
            raise PeriodError(f"the range ends ({last}) before it starts ({day})")
        if (last - day).days + 1 > MAX_DAYS:
            raise PeriodError(f"a range of at most {MAX_DAYS} days")
        return Period(day, last, zone)
    raise PeriodError(f"period must be day, week or range, not {kind[:20]!r}")


@dataclass
class Sales:
    """Money figures of one kiosk or the shop, from the journal."""

    revenue: Decimal = ZERO  # everything taken in, tax included (the Z report's net total)
    net_revenue: Decimal = ZERO  # the same without tax
    transactions: int = 0  # sales
    gross_sales: Decimal = ZERO  # sold lines, tax included, before returns and voids
    units_sold: Decimal = ZERO  # pieces sold in sales (a weighed line counts as one)
    returns: Decimal = ZERO  # returned lines (negative), returns and exchanges
    return_count: int = 0
    voids: int = 0
    void_value: Decimal = ZERO  # voided sales' totals (negative), before cash rounding
    discounts: Decimal = ZERO
    tenders: dict[str, Decimal] = field(default_factory=dict)  # what each kind took in

    @property
    def basket_value(self) -> Decimal | None:
        return _ratio(self.gross_sales, self.transactions, Decimal("0.01"))

    @property
    def basket_units(self) -> Decimal | None:
        return _ratio(self.units_sold, self.transactions, Decimal("0.1"))

    @property
    def returns_rate(self) -> Decimal | None:
        """Returned value as a share of sold value, in percent."""
        return _percent(-self.returns, self.gross_sales)


@dataclass
class Sync:
    applied: int = 0  # events the controller has of this kiosk
    reported: int = 0  # events the kiosk says it made
    lag_p50: float | None = None  # seconds from the kiosk's event to the controller
    lag_p95: float | None = None
    lag_max: float | None = None
    journal_missing: int = 0  # money events in the period without their journal (counted
    #                           from the kiosk's first journal on: older firmware sent none)

    @property
    def rate(self) -> Decimal | None:
        return _percent(Decimal(min(self.applied, self.reported)), Decimal(self.reported))


@dataclass
class Stock:
    skus: int = 0  # items stocked (the item master's active ones, else those with a level)
    out_of_stock: int = 0  # ... at or below zero at the period's end
    sold: int = 0  # base units sold in the period, net of returns
    received: int = 0
    start_units: int = 0  # on hand at the period's start (positive levels)
    end_units: int = 0
    shrink_units: int = 0  # lost: count corrections below zero plus damaged returns
    shrink_value: Decimal = ZERO  # at cost
    counted: int = 0  # SKU counts in the period
    counted_exact: int = 0  # ... that found what the controller expected
    cogs: Decimal = ZERO  # cost of the units sold
    inventory_cost: Decimal = ZERO  # average inventory at cost over the period
    no_cost: int = 0  # sold SKUs the item master has no cost for (left out of GMROI)

    @property
    def stockout_rate(self) -> Decimal | None:
        return _percent(Decimal(self.out_of_stock), Decimal(self.skus))

    @property
    def sell_through(self) -> Decimal | None:
        return _percent(Decimal(self.sold), Decimal(self.start_units + self.received))

    @property
    def accuracy(self) -> Decimal | None:
        return _percent(Decimal(self.counted_exact), Decimal(self.counted))


@dataclass
class Kpis:
    period: Period
    device: str | None  # None: the whole shop
    sales: Sales
    stock: Stock | None  # shop-wide only: stock is the shop's
    sync: Sync
    kiosks: dict[str, Sales] = field(default_factory=dict)
    kiosk_sync: dict[str, Sync] = field(default_factory=dict)
    daily: list[tuple[date, Decimal, int]] = field(default_factory=list)  # revenue, sales

    @property
    def days_of_supply(self) -> Decimal | None:
        if self.stock is None or self.stock.sold <= 0:
            return None
        per_day = Decimal(self.stock.sold) / len(self.period.days)
        return (Decimal(self.stock.end_units) / per_day).quantize(Decimal("0.1"))

    @property
    def gross_margin(self) -> Decimal | None:
        if self.stock is None:
            return None
        return self.sales.net_revenue - self.stock.cogs

    @property
    def gmroi(self) -> Decimal | None:
        """Gross margin return on inventory: margin per unit of money kept in stock."""
        if self.stock is None or self.stock.inventory_cost <= 0:
            return None
        return (self.gross_margin / self.stock.inventory_cost).quantize(Decimal("0.01"))


def _ratio(top: Decimal, bottom: int | Decimal, step: Decimal) -> Decimal | None:
    return None if not bottom else (Decimal(top) / Decimal(bottom)).quantize(step)


def _percent(top: Decimal, bottom: Decimal) -> Decimal | None:
    return None if not bottom else (100 * Decimal(top) / Decimal(bottom)).quantize(Decimal("0.1"))


def _local_day(stamp: str, zone: tzinfo) -> date:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(zone).date()


# ---------------------------------------------------------------- money


def _sales(p: Period, device: str | None) -> tuple[Sales, dict[str, Sales], list]:
    window = (JournalTxn.ts >= ts(p.start)) & (JournalTxn.ts < ts(p.end))
    if device is not None:
        window &= JournalTxn.device == device
    shop, kiosks = Sales(), defaultdict(Sales)
    by_day: dict[date, list] = {day: [ZERO, 0] for day in p.days}
    tenders: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    rows = JournalTxn.select(
        JournalTxn.device, JournalTxn.kind, JournalTxn.ts, JournalTxn.total,
        JournalTxn.rounding, JournalTxn.net, JournalTxn.change, JournalTxn.tenders,
    ).where(window).tuples()  # fmt: skip
    for dev, kind, stamp, total, rounding, net, change, tender_text in rows.iterator():
        taken = Decimal(total) + Decimal(rounding)
        for figures in (shop, kiosks[dev]):
            figures.revenue += taken
            figures.net_revenue += Decimal(net)
            figures.transactions += kind == "sale"
            figures.return_count += kind == "return"
            if kind == "void":
                figures.voids += 1
                figures.void_value += Decimal(total)  # as the Z report: before rounding
        for tender_kind, amount in json.loads(tender_text):
            tenders[dev][tender_kind] += Decimal(amount)
        tenders[dev]["cash"] -= Decimal(change)
        day = by_day.get(_local_day(stamp, p.zone))
        if day is not None:
            day[0] += taken
            day[1] += kind == "sale"
    lines = JournalLine.select(
        JournalLine.device, JournalLine.kind, JournalLine.qty, JournalLine.total,
        JournalLine.discount,
    ).where((JournalLine.ts >= ts(p.start)) & (JournalLine.ts < ts(p.end)))  # fmt: skip
    if device is not None:
        lines = lines.where(JournalLine.device == device)
    for dev, kind, qty, total, discount in lines.tuples().iterator():
        qty, total = Decimal(qty), Decimal(total)
        for figures in (shop, kiosks[dev]):
            if kind == "void":
                continue  # in void_value
            if qty < 0:
                figures.returns += total
            else:
                figures.gross_sales += total
                figures.discounts += Decimal(discount)
                if kind == "sale":
                    figures.units_sold += qty if qty == qty.to_integral_value() else 1
    for dev, kinds in tenders.items():
        kiosks[dev].tenders = {k: v for k, v in sorted(kinds.items()) if v}
        for k, v in kinds.items():
            shop.tenders[k] = shop.tenders.get(k, ZERO) + v
    shop.tenders = {k: v for k, v in sorted(shop.tenders.items()) if v}
    daily = [(day, revenue, count) for day, (revenue, count) in sorted(by_day.items())]
    return shop, dict(sorted(kiosks.items())), daily


# ---------------------------------------------------------------- stock


def _levels_at(moment: datetime) -> dict[str, int]:
    """Each SKU's level at `moment`: today's level less the moves that took effect since
    (a count made after `moment` is taken as right back then too)."""
    levels = dict(StockLevel.select(StockLevel.sku, StockLevel.on_hand).tuples())
    later = (
        Move.select(Move.sku, fn.SUM(Move.delta))
        .where(Move.at >= ts(moment))
        .group_by(Move.sku)
        .tuples()
    )
    for sku, delta in later:
        levels[sku] = levels.get(sku, 0) - int(delta)
    return levels


def _stock(p: Period) -> Stock:
    now = datetime.now(UTC)
    end_levels = _levels_at(min(p.end, now))
    start_levels = _levels_at(min(p.start, now))
    items = {
        sku: (Decimal(cost) if cost else None, unit)
        for sku, cost, unit, active in MasterItem.select(
            MasterItem.sku, MasterItem.cost, MasterItem.unit, MasterItem.active
        ).tuples()
        if active
    }
    stocked = set(items) if items else set(end_levels)
    figures = Stock(skus=len(stocked))
    figures.out_of_stock = sum(1 for sku in stocked if end_levels.get(sku, 0) <= 0)
    figures.start_units = sum(max(start_levels.get(sku, 0), 0) for sku in stocked)
    figures.end_units = sum(max(end_levels.get(sku, 0), 0) for sku in stocked)
    window = (Move.at >= ts(p.start)) & (Move.at < ts(p.end))
    sold: dict[str, int] = defaultdict(int)
    for sku, kind, delta in (
        Move.select(Move.sku, Move.kind, fn.SUM(Move.delta))
        .where(window)
        .group_by(Move.sku, Move.kind)
        .tuples()
    ):
        if kind in SOLD_KINDS:
            sold[sku] -= int(delta)
        elif kind == "receive":
            figures.received += int(delta)
    figures.sold = sum(sold.values())

    def cost_of(sku: str) -> Decimal | None:
        cost, unit = items.get(sku, (None, None))
        if cost is None:
            return None
        return cost / 1000 if unit == "kg" else cost  # weighed stock is kept in grams

    for sku, units in sold.items():
        cost = cost_of(sku)
        if cost is None:
            figures.no_cost += bool(units)
        else:
            figures.cogs += cost * units
    for sku in stocked:
        cost = cost_of(sku)
        if cost is not None:
            average = Decimal(max(start_levels.get(sku, 0), 0) + max(end_levels.get(sku, 0), 0))
            figures.inventory_cost += cost * average / 2
    counts = CountRecord.select(CountRecord.sku, CountRecord.diff).where(
        (CountRecord.at >= ts(p.start))
        & (CountRecord.at < ts(p.end))
        & CountRecord.diff.is_null(False)
    )
    for sku, diff in counts.tuples():
        figures.counted += 1
        figures.counted_exact += diff == 0
        if diff < 0:
            figures.shrink_units -= diff
            figures.shrink_value -= (cost_of(sku) or ZERO) * diff
    damaged = JournalLine.select(JournalLine.sku, JournalLine.qty).where(
        (JournalLine.ts >= ts(p.start)) & (JournalLine.ts < ts(p.end))
        & (JournalLine.condition == "damaged")
    )  # fmt: skip
    for sku, qty in damaged.tuples():
        units = -Decimal(qty)  # returned: negative on the return
        cost, unit = items.get(sku, (None, None))
        base = int(units * 1000) if unit == "kg" else int(units)
        figures.shrink_units += base
        figures.shrink_value += (cost or ZERO) * units
    figures.cogs = figures.cogs.quantize(Decimal("0.01"))
    figures.inventory_cost = figures.inventory_cost.quantize(Decimal("0.01"))
    figures.shrink_value = figures.shrink_value.quantize(Decimal("0.01"))
    return figures


# ---------------------------------------------------------------- sync


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def _sync(p: Period, device: str | None) -> tuple[Sync, dict[str, Sync]]:
    states = KioskState.select()
    if device is not None:
        states = states.where(KioskState.device == device)
    per: dict[str, Sync] = {}
    for state in states:
        applied = AppliedEvent.select().where(AppliedEvent.device == state.device).count()
        per[state.device] = Sync(applied=applied, reported=max(state.reported_seq or 0, applied))
    window = (AppliedEvent.ts >= ts(p.start)) & (AppliedEvent.ts < ts(p.end))
    if device is not None:
        window &= AppliedEvent.device == device
    lags: dict[str, list[float]] = defaultdict(list)
    for dev, stamp, applied_at in AppliedEvent.select(
        AppliedEvent.device, AppliedEvent.ts, AppliedEvent.applied_at
    ).where(window).tuples().iterator():  # fmt: skip
        made = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        heard = datetime.fromisoformat(applied_at.replace("Z", "+00:00"))
        lags[dev].append(max((heard - made).total_seconds(), 0.0))
    money = AppliedEvent.select(AppliedEvent.device, AppliedEvent.seq).where(
        window & AppliedEvent.kind.in_(SOLD_KINDS) & ~AppliedEvent.device.startswith("@")
    )
    have = {
        (dev, seq)
        for dev, seq in JournalTxn.select(JournalTxn.device, JournalTxn.seq)
        .where(
            (JournalTxn.ts >= ts(p.start - timedelta(days=1)))
            & (JournalTxn.ts < ts(p.end + timedelta(days=1)))
        )
        .tuples()
    }
    # A kiosk journals from its update to this release on: its older sales have none.
    first = dict(
        JournalTxn.select(JournalTxn.device, fn.MIN(JournalTxn.seq))
        .group_by(JournalTxn.device)
        .tuples()
    )
    missing: dict[str, int] = defaultdict(int)
    for dev, seq in money.tuples():
        if dev in first and seq > first[dev] and (dev, seq) not in have:
            missing[dev] += 1
    shop = Sync()
    every_lag: list[float] = []
    for dev in sorted(set(per) | set(lags)):
        figures = per.setdefault(dev, Sync())
        values = sorted(lags.get(dev, []))
        every_lag += values
        figures.lag_p50, figures.lag_p95 = _quantile(values, 0.5), _quantile(values, 0.95)
        figures.lag_max = values[-1] if values else None
        figures.journal_missing = missing.get(dev, 0)
        shop.applied += figures.applied
        shop.reported += figures.reported
        shop.journal_missing += figures.journal_missing
    every_lag.sort()
    shop.lag_p50, shop.lag_p95 = _quantile(every_lag, 0.5), _quantile(every_lag, 0.95)
    shop.lag_max = every_lag[-1] if every_lag else None
    return shop, dict(sorted(per.items()))


def compute(p: Period, device: str | None = None) -> Kpis:
    """Every KPI of the period, for one kiosk or (device None) the shop."""
    sales, kiosks, daily = _sales(p, device)
    sync, kiosk_sync = _sync(p, device)
    return Kpis(
        period=p,
        device=device,
        sales=sales,
        stock=_stock(p) if device is None else None,
        sync=sync,
        kiosks=kiosks,
        kiosk_sync=kiosk_sync,
        daily=daily,
    )
