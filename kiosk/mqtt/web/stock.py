"""Stock: every item with its shop level, search, per-kiosk movements, low stock with
reorder suggestions (kiosk.mqtt.reorder) as a purchase-order CSV, and a manager's
audited adjustments.

100,000 items stay fast: the list is keyset-paginated on the SKU (an index seek, a
page of ROWS rows, never OFFSET), and the reorder figures are worked out for the
shown page only (one grouped query over the (sku, at) index of moves). The low-stock
list and the CSV need every item's demand and are built on request.

An adjustment is a stock event of the pseudo-device WEB_DEVICE ("@web": no kiosk id
can start with "@"), kind "adjust", applied by kiosk.mqtt.store.apply_events like a
kiosk's (so a later count absorbs it the same way), in the same transaction as its
audit row; the new level is then published retained on <root>/stock/<sku> like the
controller's own.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from peewee import JOIN, fn
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, StreamingResponse

from kiosk.mqtt import reorder, store, topics
from kiosk.mqtt.web import app

ROWS = 50  # rows on one page of the stock list
WEB_DEVICE = "@web"
MAX_REASON = 200


PAGE = app.Page("stock", "Stock", "/stock", order=10)


def _master() -> bool:
    return store.MasterItem.select(store.MasterItem.sku).limit(1).exists()


def page_rows(
    cfg, query: str = "", after: str | None = None, before: str | None = None, limit: int = ROWS
) -> tuple[list[dict], bool, bool]:
    """One page of items, keyset-paginated by SKU: (rows, has_next, has_prev)."""
    level, item, info = store.StockLevel, store.MasterItem, store.SkuInfo
    if _master():
        sku_col = item.sku
        q = (
            item.select(item.sku, item.name, item.case_pack, item.barcodes, level.on_hand, item)
            .join(level, JOIN.LEFT_OUTER, on=(level.sku == item.sku))
        )  # fmt: skip
        name_col, code_col = item.name, item.barcodes
    else:
        sku_col = level.sku
        q = level.select(
            level.sku, info.name, info.case_pack, level.on_hand
        ).join(info, JOIN.LEFT_OUTER, on=(info.sku == level.sku))  # fmt: skip
        name_col, code_col = info.name, None
    text = query.strip()[:64]
    if text:
        match = sku_col.startswith(text) | name_col.contains(text)
        if code_col is not None and text.isdigit():
            match |= code_col.contains(text)
        q = q.where(match)
    if before is not None:
        rows = list(q.where(sku_col < before).order_by(sku_col.desc()).limit(limit + 1).dicts())
        has_prev = len(rows) > limit
        rows = rows[:limit][::-1]
        has_next = True
    else:
        if after is not None:
            q = q.where(sku_col > after)
        rows = list(q.order_by(sku_col).limit(limit + 1).dicts())
        has_next = len(rows) > limit
        rows = rows[:limit]
        has_prev = after is not None
    _reorder_figures(rows, cfg)
    return rows, has_next, has_prev


def _reorder_figures(rows: list[dict], cfg) -> None:
    """Reorder point, low flag and suggestion for the shown rows only (reorder.py's rules)."""
    if not rows:
        return
    now = datetime.now(UTC)
    since = store.ts(now - timedelta(days=cfg.history_days))
    skus = [r["sku"] for r in rows]
    sold = {
        sku: -int(total or 0)
        for sku, total in store.Move.select(store.Move.sku, fn.SUM(store.Move.delta))
        .where(
            store.Move.sku.in_(skus)
            & store.Move.kind.in_(reorder.SELLING_KINDS)
            & (store.Move.at > since)
        )
        .group_by(store.Move.sku)
        .tuples()
    }
    items = {i.sku: i for i in store.MasterItem.select().where(store.MasterItem.sku.in_(skus))}
    for row in rows:
        row["on_hand"] = row.get("on_hand") or 0
        case = max(row.get("case_pack") or 1, 1)
        row["case_pack"] = case
        row["name"] = row.get("name") or row["sku"]
        demand = Decimal(max(sold.get(row["sku"], 0), 0)) / cfg.history_days
        item = items.get(row["sku"])
        if item is not None:
            point = reorder.master_reorder_point(item, demand, cfg)
        else:
            point = math.ceil(demand * (cfg.lead_time_days + cfg.safety_days))
        up_to = Decimal(point) + demand * cfg.review_days
        on_hand = row["on_hand"]
        row["reorder_point"] = point
        row["demand"] = demand.quantize(Decimal("0.01"))
        low = on_hand <= point
        row["order_qty"] = reorder.round_up_to_case(up_to - on_hand, case) if low else 0
        row["low"] = on_hand <= point and (demand > 0 or on_hand <= 0)


def _config(request: Request):
    return app.web_of(request).config.controller


@PAGE.route("/stock")
def stock_page(request: Request):
    app.require(request)
    params = request.query_params
    query = params.get("q", "")
    rows, has_next, has_prev = page_rows(
        _config(request), query, params.get("after"), params.get("before")
    )
    counted = store.MasterItem if _master() else store.StockLevel
    total = counted.select().count() if not query else None
    return app.render(
        request,
        "stock.html",
        {
            "rows": rows,
            "q": query,
            "has_next": has_next,
            "has_prev": has_prev,
            "first": rows[0]["sku"] if rows else None,
            "last": rows[-1]["sku"] if rows else None,
            "total": total,
        },
    )


class _Item(NamedTuple):
    """What reorder.master_reorder_point reads of an item."""

    sku: str
    name: str
    case_pack: int
    reorder_point: int | None = None
    lead_time_days: int | None = None
    safety_stock: int | None = None


def low_rows(cfg, now: datetime | None = None) -> list[reorder.Suggestion]:
    """What `kiosk controller status` lists as low (reorder.suggestions' rules, the same
    figures), worked out only for the items that can be low: those sold in the window
    and those at or below zero. The others have no demand, so their reorder point
    cannot flag them (tests/test_web_pages.py checks against reorder.suggestions)."""
    now = now or datetime.now(UTC)
    move, level = store.Move, store.StockLevel
    since = store.ts(now - timedelta(days=cfg.history_days))
    db = store.store_db
    # Raw cursors below: peewee's per-value conversion of 100,000s of rows took seconds.
    sold = {
        sku: -int(total or 0)
        for sku, total in db.execute(
            move.select(move.sku, fn.SUM(move.delta))
            .where(move.kind.in_(reorder.SELLING_KINDS) & (move.at > since))
            .group_by(move.sku)
        )
    }
    selling = {sku for sku, n in sold.items() if n > 0}
    levels = dict(db.execute(level.select(level.sku, level.on_hand)))
    wanted = sorted(sku for sku, n in levels.items() if n <= 0 or sku in selling)
    master = _master()
    if master:
        item = store.MasterItem
        columns = (item.sku, item.name, item.case_pack, item.reorder_point,
                   item.lead_time_days, item.safety_stock)  # fmt: skip
    else:
        item = store.SkuInfo
        columns = (item.sku, item.name, item.case_pack, None, None, None)
    wanted_set = set(wanted)
    info = {
        row[0]: _Item(*row)
        for row in db.execute(item.select(*(c for c in columns if c is not None)))
        if row[0] in wanted_set
    }
    known = master or bool(info) or store.SkuInfo.select().exists()
    out = []
    for sku in wanted:
        item = info.get(sku)
        if known and item is None:
            continue  # unknown to the shop's catalog
        on_hand = levels[sku]
        demand = Decimal(max(sold.get(sku, 0), 0)) / cfg.history_days
        case = max(item.case_pack or 1, 1) if item is not None else 1
        if master:
            point = reorder.master_reorder_point(item, demand, cfg)
        else:
            point = math.ceil(demand * (cfg.lead_time_days + cfg.safety_days))
        if on_hand > point or not (demand or on_hand <= 0):
            continue
        up_to = Decimal(point) + demand * cfg.review_days
        out.append(
            reorder.Suggestion(
                sku=sku,
                name=item.name if item is not None else sku,
                on_hand=on_hand,
                daily_demand=demand.quantize(Decimal("0.01")),
                reorder_point=point,
                order_qty=reorder.round_up_to_case(up_to - on_hand, case),
                case_pack=case,
            )
        )
    return out


@PAGE.route("/stock/low")
def low_page(request: Request):
    app.require(request)
    cfg = _config(request)
    return app.render(request, "stock_low.html", {"rows": low_rows(cfg)})


@PAGE.route("/stock/purchase-order.csv")
def purchase_order(request: Request):
    """The low items' suggestions as a purchase order: one line per SKU, in case packs."""
    app.require(request, "manager")
    cfg = _config(request)
    rows = [r for r in low_rows(cfg) if r.order_qty > 0]
    costs = dict(
        store.MasterItem.select(store.MasterItem.sku, store.MasterItem.cost)
        .where(store.MasterItem.sku.in_([r.sku for r in rows]))
        .tuples()
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["sku", "name", "on_hand", "reorder_point", "daily_demand", "case_pack", "cases",
         "order_qty", "unit_cost", "line_cost"]
    )  # fmt: skip
    total = Decimal(0)
    for r in rows:
        cost = _decimal(costs.get(r.sku))
        line = cost * r.order_qty if cost is not None else None
        total += line or 0
        writer.writerow(
            [r.sku, r.name, r.on_hand, r.reorder_point, r.daily_demand, r.case_pack,
             r.order_qty // r.case_pack, r.order_qty, cost if cost is not None else "",
             line if line is not None else ""]
        )  # fmt: skip
    writer.writerow(["TOTAL", "", "", "", "", "", "", sum(r.order_qty for r in rows), "", total])
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    store_id = app.web_of(request).config.device.store
    return StreamingResponse(
        iter([out.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="purchase-order-{store_id}-{stamp}.csv"'
        },
    )


def _decimal(text) -> Decimal | None:
    try:
        return Decimal(text) if text not in (None, "") else None
    except InvalidOperation:
        return None


def item_detail(sku: str) -> dict | None:
    level = store.StockLevel.get_or_none(store.StockLevel.sku == sku)
    item = store.MasterItem.get_or_none(store.MasterItem.sku == sku)
    if level is None and item is None:
        return None
    move = store.Move
    since = store.ts(datetime.now(UTC) - timedelta(days=7))
    per_kiosk: dict[str, dict] = {}
    for device, kind, total, n in (
        move.select(move.device, move.kind, fn.SUM(move.delta), fn.COUNT(move.id))
        .where(move.sku == sku)
        .group_by(move.device, move.kind)
        .tuples()
    ):
        row = per_kiosk.setdefault(device, {"device": device, "total": 0, "moves": 0, "week": 0})
        row[kind] = int(total or 0)
        row["total"] += int(total or 0)
        row["moves"] += n
    for device, total in (
        move.select(move.device, fn.SUM(move.delta))
        .where((move.sku == sku) & (move.at > since))
        .group_by(move.device)
        .tuples()
    ):
        per_kiosk.setdefault(device, {"device": device, "total": 0, "moves": 0})["week"] = int(
            total or 0
        )
    recent = list(
        move.select().where(move.sku == sku).order_by(move.at.desc(), move.id.desc()).limit(30)
    )
    counts = list(
        store.CountRecord.select()
        .where(store.CountRecord.sku == sku)
        .order_by(store.CountRecord.at.desc())
        .limit(10)
    )
    return {
        "sku": sku,
        "name": item.name if item else sku,
        "item": item,
        "level": level,
        "on_hand": level.on_hand if level else 0,
        "per_kiosk": sorted(per_kiosk.values(), key=lambda r: r["device"]),
        "kinds": sorted({k for r in per_kiosk.values() for k in r if k in topics.KINDS}),
        "recent": recent,
        "counts": counts,
        "adjustments": adjustments_of(sku),
    }


def adjustments_of(sku: str, limit: int = 20) -> list:
    audit = getattr(store, "StockAdjustment", None)
    if audit is None:
        return []
    return list(audit.select().where(audit.sku == sku).order_by(audit.id.desc()).limit(limit))


@PAGE.route("/stock/item/{sku:path}")
def item_page(request: Request, error: str | None = None, notice: str | None = None):
    session = app.require(request)
    sku = request.path_params["sku"]
    detail = item_detail(sku)
    if detail is None:
        return app.render(request, "message.html", {"text": f"No item {sku}"}, status=404)
    return app.render(
        request,
        "stock_item.html",
        {**detail, "error": error, "notice": notice, "manager": session.role == "manager"},
        status=400 if error else 200,
    )


def apply_adjustment(sku: str, delta: int, reason: str, user: str, now: datetime) -> int:
    """Apply a manager's adjustment as a stock event of WEB_DEVICE, with its audit row,
    in one transaction; the SKU's new level."""
    applied = store.AppliedEvent
    with store.store_db.atomic():
        last = applied.select(fn.MAX(applied.seq)).where(applied.device == WEB_DEVICE).scalar() or 0
        seq = last + 1
        event = topics.StockEvent(
            device=WEB_DEVICE,
            seq=seq,
            ts=now,
            kind="adjust",
            txn=f"web-{seq}",
            moves=((sku, delta),),
            clock="synced",
        )
        outcome = store.apply_events([event], now)
        if not outcome.fresh:
            raise RuntimeError("the adjustment was not applied (try again)")
        store.StockAdjustment.create(
            sku=sku, delta=delta, reason=reason, user=user, at=store.ts(now),
            device=WEB_DEVICE, seq=seq,
        )  # fmt: skip
        level = store.StockLevel.get_by_id(sku)
    return level.on_hand


@PAGE.route("/stock/item/{sku:path}/adjust", methods=["POST"])
def adjust(request: Request):
    session = app.require(request, "manager")
    sku = request.path_params["sku"]
    data = app.form(request)
    try:
        delta = int(data.get("delta", "").strip())
    except ValueError:
        return item_page(request, error="the change must be a whole number of units, e.g. -3")
    reason = " ".join(data.get("reason", "").split())
    if delta == 0 or abs(delta) > topics.MAX_MOVE_QTY:
        return item_page(request, error=f"the change must be 1 to {topics.MAX_MOVE_QTY} units")
    if not 3 <= len(reason) <= MAX_REASON:
        return item_page(request, error=f"give a reason (3 to {MAX_REASON} characters)")
    if item_detail(sku) is None:
        return PlainTextResponse(f"no item {sku}", 404)
    on_hand = apply_adjustment(sku, delta, reason, session.user, datetime.now(UTC))
    web = app.web_of(request)
    if web.relay is not None:
        web.relay.publish_level(sku, on_hand)  # retained, and back to every open page
    else:
        web.live.publish("stock", {"sku": sku, "on_hand": on_hand})
    return RedirectResponse(f"/stock/item/{sku}?adjusted={delta:+d}", 303)
