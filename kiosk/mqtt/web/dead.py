"""Dead letters and conflicts: every message the controller (or the web view's link)
refused, with the reason, readable; a retry sends the kept payload back on its own
topic, where the controller handles it again as if it had just arrived (a refused
event that now applies is applied; one refused again comes back here). A payload
that was cut when kept (over 2,000 characters) cannot be retried."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse

from kiosk.mqtt import store
from kiosk.mqtt.web import app

ROWS = 50  # dead letters shown at once
KEPT = 2000  # characters store.dead_letter keeps of a payload


PAGE = app.Page("dead", "Dead letters", "/dead-letters", order=50, role="manager")


@PAGE.route("/dead-letters")
def dead_page(request: Request):
    app.require(request, "manager")
    letter = store.DeadLetter
    params = request.query_params
    query = letter.select().order_by(letter.id.desc())
    only = params.get("only")
    if only == "conflicts":
        query = query.where(letter.error.startswith("conflict:"))
    before = params.get("before")
    if before and before.isdigit():
        query = query.where(letter.id < int(before))
    rows = list(query.limit(ROWS + 1))
    return app.render(
        request,
        "dead.html",
        {
            "rows": rows[:ROWS],
            "more": len(rows) > ROWS,
            "total": letter.select().count(),
            "conflicts": letter.select().where(letter.error.startswith("conflict:")).count(),
            "only": only,
            "kept": KEPT,
            "notice": params.get("notice"),
        },
    )


@PAGE.route("/dead-letters/{letter:int}/retry", methods=["POST"])
def retry(request: Request):
    app.require(request, "manager")
    web = app.web_of(request)
    row = store.DeadLetter.get_or_none(store.DeadLetter.id == request.path_params["letter"])
    if row is None:
        return RedirectResponse("/dead-letters?notice=already+gone", 303)
    if len(row.payload) >= KEPT:
        return RedirectResponse("/dead-letters?notice=payload+was+cut+when+kept:+not+retried", 303)
    if web.relay is None:
        return RedirectResponse("/dead-letters?notice=no+broker+link", 303)
    payload = row.payload.encode("utf-8")
    store.DeadLetter.delete().where(store.DeadLetter.id == row.id).execute()
    web.relay.resend(row.topic, payload)
    return RedirectResponse("/dead-letters?notice=sent+again", 303)


@PAGE.route("/dead-letters/{letter:int}/dismiss", methods=["POST"])
def dismiss(request: Request):
    app.require(request, "manager")
    store.DeadLetter.delete().where(store.DeadLetter.id == request.path_params["letter"]).execute()
    return RedirectResponse("/dead-letters?notice=dismissed", 303)
