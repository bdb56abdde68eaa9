"""Updates: the shop's update offer (kiosk.update.offer) and which kiosk runs which
version from which slot. Also serves the offer to the kiosks: GET /updates/current.json
and GET /updates/<bundle> (HTTP Range, so a kiosk on Wi-Fi resumes). These two need no
login: a bundle holds no secret, and a kiosk checks its sha256 and its signature."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from kiosk.mqtt import store
from kiosk.mqtt.web import app
from kiosk.update import offer

PAGE = app.Page("updates", "Updates", "/updates", order=45, role="manager")


def folder_of(request: Request):
    return app.web_of(request).config.controller.updates_folder()


@PAGE.route("/updates/current.json")
def current_json(request: Request) -> Response:
    path = folder_of(request) / offer.CURRENT
    if offer.current(folder_of(request)) is None:
        return PlainTextResponse("no update offered", 404)
    return FileResponse(path, media_type="application/json", headers={"Cache-Control": "no-store"})


@PAGE.route("/updates/{file}")
def bundle_file(request: Request) -> Response:
    """Only the offered bundle, by its exact name: nothing else in the folder is served."""
    wanted = offer.current(folder_of(request))
    name = request.path_params["file"]
    if wanted is None or name != wanted.file:
        return PlainTextResponse("no such bundle", 404)
    return FileResponse(folder_of(request) / wanted.file, media_type="application/octet-stream")


@PAGE.route("/updates")
def updates_page(request: Request):
    app.require(request, "manager")
    web = app.web_of(request)
    wanted = offer.current(web.config.controller.updates_folder())
    rows = []
    for state in store.KioskState.select().order_by(store.KioskState.device):
        extras = web.relay.kiosk_extras(state.device) if web.relay is not None else {}
        update = extras.get("update") or {}
        rows.append(
            {
                "device": state.device,
                "app": extras.get("app") or "-",
                "slot": update.get("slot") or "-",
                "other": update.get("other") or "-",
                "result": update.get("result"),
                "version": update.get("version"),
                "reason": update.get("reason"),
                "offered": wanted is not None and wanted.for_device(state.device, offer.now()),
                "current": wanted is not None and extras.get("app") == wanted.version,
            }
        )
    return app.render(request, "updates.html", {"offer": wanted, "rows": rows})
