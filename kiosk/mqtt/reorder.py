"""Low stock and reorder suggestions from the controller's moves.

    average daily demand = units sold (net of returns) over the last history_days / history_days
    reorder point        = demand x lead_time_days + demand x safety_days (safety stock)
    order up to          = reorder point + demand x review_days
    suggestion           = order up to - on hand, rounded up to whole case packs

Items at or below their reorder point are low; the suggestion is what to order.

With an item master (`kiosk controller catalog import FILE`), each item's own
figures are used instead of [controller]'s:

    reorder point = demand x the item's lead_time_days + its safety_stock,
                    rounded up to whole case packs (or its reorder_point when set)

Once a catalog is loaded (the item master, or the older reorder-only list), a SKU a kiosk reports
that the catalog does not know is unknown: listed by `unknown_skus` (and in
`kiosk controller status`) and never given a suggestion. With no catalog loaded the
controller knows no SKU list to check against, so every SKU gets suggestions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from peewee import fn

from kiosk.config import ControllerConfig
from kiosk.mqtt.store import (
    AppliedEvent,
    CountRecord,
    KioskState,
    MasterItem,
    Move,
    SkuInfo,
    StockLevel,
    ts,
)

SELLING_KINDS = ("sale", "return", "void", "exchange")


@dataclass(frozen=True)
class Suggestion:
    sku: str
    name: str
    on_hand: int
    daily_demand: Decimal
    reorder_point: int
    order_qty: int
    case_pack: int

    @property
    def low(self) -> bool:
        return self.on_hand <= self.reorder_point


def round_up_to_case(qty: Decimal, case_pack: int) -> int:
    if qty <= 0:
        return 0
    return math.ceil(qty / case_pack) * case_pack


def suggestions(cfg: ControllerConfig, now: datetime) -> list[Suggestion]:
    since = ts(now - timedelta(days=cfg.history_days))
    sold = {
        sku: -int(total or 0)  # sales move stock out: negative deltas
        for sku, total in Move.select(Move.sku, fn.SUM(Move.delta))
        .where(Move.kind.in_(SELLING_KINDS) & (Move.at > since))
        .group_by(Move.sku)
        .tuples()
    }
    items = {row.sku: row for row in MasterItem.select()}
    info = items or {row.sku: row for row in SkuInfo.select()}
    out = []
    for level in StockLevel.select().order_by(StockLevel.sku):
        if info and level.sku not in info:
            continue  # unknown to the shop's catalog: see unknown_skus
        demand = Decimal(max(sold.get(level.sku, 0), 0)) / cfg.history_days
        sku_info = info.get(level.sku)
        case = max(sku_info.case_pack or 1, 1) if sku_info else 1
        item = items.get(level.sku)
        if item is not None:
            point = master_reorder_point(item, demand, cfg)
        else:
            point = math.ceil(demand * (cfg.lead_time_days + cfg.safety_days))
        up_to = Decimal(point) + demand * cfg.review_days
        order = round_up_to_case(up_to - level.on_hand, case) if level.on_hand <= point else 0
        out.append(
            Suggestion(
                sku=level.sku,
                name=sku_info.name if sku_info else level.sku,
                on_hand=level.on_hand,
                daily_demand=demand.quantize(Decimal("0.01")),
                reorder_point=point,
                order_qty=order,
                case_pack=case,
            )
        )
    return out


def master_reorder_point(item: MasterItem, demand: Decimal, cfg: ControllerConfig) -> int:
    """The item's reorder_point when set; else demand x lead time + safety stock,
    rounded up to whole cases ([controller]'s figures stand in for missing ones)."""
    if item.reorder_point is not None:
        return item.reorder_point
    lead = cfg.lead_time_days if item.lead_time_days is None else Decimal(item.lead_time_days)
    safety = demand * cfg.safety_days if item.safety_stock is None else item.safety_stock
    return round_up_to_case(demand * lead + safety, max(item.case_pack or 1, 1))


def catalog_known() -> bool:
    return MasterItem.select().exists() or SkuInfo.select().exists()


def kiosks() -> list[KioskState]:
    return list(KioskState.select().order_by(KioskState.device))


@dataclass(frozen=True)
class UnknownSku:
    sku: str
    on_hand: int
    devices: tuple[str, ...]  # the kiosks whose events named it


def unknown_skus() -> list[UnknownSku]:
    """SKUs in kiosks' events that the loaded catalog does not know (none without one)."""
    if MasterItem.select().exists():
        known = MasterItem.select(MasterItem.sku)
    elif SkuInfo.select().exists():
        known = SkuInfo.select(SkuInfo.sku)
    else:
        return []
    levels = dict(  # every SKU an event named has a level row
        StockLevel.select(StockLevel.sku, StockLevel.on_hand)
        .where(StockLevel.sku.not_in(known))
        .order_by(StockLevel.sku)
        .tuples()
    )
    devices: dict[str, set[str]] = {sku: set() for sku in levels}
    for model in (Move, CountRecord):
        for sku, device in (
            model.select(model.sku, model.device)
            .where(model.sku.in_(list(levels)))
            .distinct()
            .tuples()
        ):
            devices[sku].add(device)
    return [UnknownSku(sku, n, tuple(sorted(devices[sku]))) for sku, n in levels.items()]


def unsynced_events() -> dict[str, int]:
    """Per kiosk, how many of its applied events it made with its clock unsynchronised."""
    return dict(
        AppliedEvent.select(AppliedEvent.device, fn.COUNT(AppliedEvent.id))
        .where(AppliedEvent.clock == "unsynced")
        .group_by(AppliedEvent.device)
        .tuples()
    )
