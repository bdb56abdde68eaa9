"""Alerts: what kiosks ask staff for, live (server-sent events, a sound), acknowledged
here or on a kiosk; an acknowledgement clears the alert everywhere (relay.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

from kiosk.mqtt import store
from kiosk.mqtt.web import app
from kiosk.mqtt.web.relay import alert_json

RECENT = 50


PAGE = app.Page("alerts", "Alerts", "/alerts", order=30)


def open_alerts() -> list:
    model = store.Alert
    return list(
        model.select().where(model.acked_at.is_null()).order_by(model.raised_at.desc()).limit(500)
    )


@PAGE.route("/alerts")
def alerts_page(request: Request):
    app.require(request)
    model = store.Alert
    done = list(
        model.select()
        .where(model.acked_at.is_null(False))
        .order_by(model.acked_at.desc())
        .limit(RECENT)
    )
    return app.render(
        request,
        "alerts.html",
        {"open": [alert_json(a) for a in open_alerts()], "done": [alert_json(a) for a in done]},
    )


@PAGE.route("/alerts/open.json")
def open_json(request: Request):
    if app.current(request) is None:
        return JSONResponse([], 401)
    return JSONResponse([alert_json(a) for a in open_alerts()])


@PAGE.route("/alerts/{device}/{alert_id}/ack", methods=["POST"])
def acknowledge(request: Request):
    session = app.require(request)
    web = app.web_of(request)
    device, alert_id = request.path_params["device"], request.path_params["alert_id"]
    by = f"{session.user}@web"
    if web.relay is not None:
        web.relay.acknowledge(device, alert_id, by)
    else:  # no broker link (a page test): the store and the open pages only
        model = store.Alert
        now = store.ts(datetime.now(UTC))
        model.update(acked_at=now, acked_by=by).where(
            (model.device == device) & (model.alert_id == alert_id) & model.acked_at.is_null()
        ).execute()
        web.live.publish("alert-cleared", {"device": device, "id": alert_id, "acked_by": by})
    if request.headers.get("x-csrf-token"):  # fetch() from the page
        return PlainTextResponse("ok")
    return RedirectResponse("/alerts", 303)
