"""KPIs: a day, a week or a range, shop-wide or one kiosk, as tiles a manager reads at
a glance and charts (uPlot, served from static/): revenue and sales per day, revenue
per kiosk. The figures come from kiosk.mqtt.kpis; /kpis/data gives the same as JSON."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import JSONResponse

from kiosk.mqtt import kpis, store
from kiosk.mqtt.web import app

ACCURACY_GOAL = Decimal(98)  # inventory accuracy a shop should hold, in percent
SYNC_GOAL = Decimal(99)


PAGE = app.Page("kpis", "KPIs", "/kpis", order=40, role="manager")


def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise kpis.PeriodError(f"{text[:20]!r} is not a date (YYYY-MM-DD)") from None


def _query(request: Request) -> tuple[kpis.Period, str | None]:
    params = request.query_params
    today = datetime.now().astimezone().date()
    kind = params.get("period", "week")
    first = _day(params.get("day"), today)
    last = _day(params.get("last"), first) if kind == "range" else None
    device = params.get("kiosk") or None
    if (
        device is not None
        and store.KioskState.get_or_none(store.KioskState.device == device) is None
    ):
        raise kpis.PeriodError(f"no kiosk {device[:32]!r}")
    return kpis.period(kind, first, last), device


def _num(value) -> str | float | int | None:
    """JSON for a figure: Decimal as text (exact), floats rounded."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return round(value, 3)
    return value


def as_data(figures: kpis.Kpis) -> dict:
    def sales(s: kpis.Sales) -> dict:
        return {
            "revenue": _num(s.revenue), "net_revenue": _num(s.net_revenue),
            "transactions": s.transactions, "basket_value": _num(s.basket_value),
            "basket_units": _num(s.basket_units), "gross_sales": _num(s.gross_sales),
            "returns": _num(s.returns), "returns_rate": _num(s.returns_rate),
            "return_count": s.return_count, "voids": s.voids, "void_value": _num(s.void_value),
            "discounts": _num(s.discounts), "tenders": {k: _num(v) for k, v in s.tenders.items()},
        }  # fmt: skip

    def sync(s: kpis.Sync) -> dict:
        return {
            "applied": s.applied, "reported": s.reported, "rate": _num(s.rate),
            "lag_p50": _num(s.lag_p50), "lag_p95": _num(s.lag_p95), "lag_max": _num(s.lag_max),
            "journal_missing": s.journal_missing,
        }  # fmt: skip

    stock = figures.stock
    return {
        "period": {"first": figures.period.first.isoformat(),
                   "last": figures.period.last.isoformat(), "label": figures.period.label},
        "kiosk": figures.device,
        "sales": sales(figures.sales),
        "stock": None if stock is None else {
            "skus": stock.skus, "out_of_stock": stock.out_of_stock,
            "stockout_rate": _num(stock.stockout_rate), "sold": stock.sold,
            "received": stock.received, "sell_through": _num(stock.sell_through),
            "days_of_supply": _num(figures.days_of_supply),
            "shrink_units": stock.shrink_units, "shrink_value": _num(stock.shrink_value),
            "gross_margin": _num(figures.gross_margin), "cogs": _num(stock.cogs),
            "inventory_cost": _num(stock.inventory_cost), "gmroi": _num(figures.gmroi),
            "no_cost": stock.no_cost, "counted": stock.counted,
            "accuracy": _num(stock.accuracy),
        },
        "sync": sync(figures.sync),
        "kiosks": {
            device: {**sales(s), "sync": sync(figures.kiosk_sync.get(device, kpis.Sync()))}
            for device, s in figures.kiosks.items()
        },
        "kiosk_sync": {device: sync(s) for device, s in figures.kiosk_sync.items()},
        "daily": [
            {"day": day.isoformat(), "revenue": _num(revenue), "transactions": count}
            for day, revenue, count in figures.daily
        ],
    }  # fmt: skip


@PAGE.route("/kpis/data")
def kpis_data(request: Request):
    app.require(request, "manager")
    try:
        period, device = _query(request)
    except kpis.PeriodError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(as_data(kpis.compute(period, device)))


@PAGE.route("/kpis")
def kpis_page(request: Request):
    app.require(request, "manager")
    params = request.query_params
    devices = [k.device for k in store.KioskState.select().order_by(store.KioskState.device)]
    context = {
        "devices": devices,
        "kind": params.get("period", "week"),
        "day": params.get("day", ""),
        "last": params.get("last", ""),
        "kiosk": params.get("kiosk", ""),
        "accuracy_goal": ACCURACY_GOAL,
        "sync_goal": SYNC_GOAL,
        "currency": app.web_of(request).config.money.currency,
        "none_sales": kpis.Sales(),  # a kiosk with no sales in the period
    }
    try:
        period, device = _query(request)
    except kpis.PeriodError as exc:
        return app.render(request, "kpis.html", {**context, "error": str(exc)}, status=400)
    figures = kpis.compute(period, device)
    data = as_data(figures)
    return app.render(
        request,
        "kpis.html",
        {**context, "k": figures, "data": data},
    )
