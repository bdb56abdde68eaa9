"""Kiosks: online or offline and since when, last sale, outbox depth, printer, catalog and
app versions (with the A/B slot it runs from, the other slot's version and an update that
was rolled back), clock; a kiosk that stopped syncing is red (offline, no status for
[controller] stale_after_s, or events lost: it reports seqs the controller lacks with
an empty outbox)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request

from kiosk.mqtt import master, store, topics
from kiosk.mqtt.web import app

PAGE = app.Page("kiosks", "Kiosks", "/kiosks", order=20)


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        moment = datetime.strptime(stamp, topics.TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (now - moment).total_seconds()


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def kiosk_rows(web: app.Web) -> list[dict]:
    now = datetime.now(UTC)
    stale = web.config.controller.stale_after_s
    version = master.current()[0]
    rows = []
    applied = store.AppliedEvent
    for k in store.KioskState.select().order_by(store.KioskState.device):
        extras = web.relay.kiosk_extras(k.device) if web.relay is not None else {}
        last_sale = (
            applied.select(applied.ts)
            .where((applied.device == k.device) & (applied.kind == "sale"))
            .order_by(applied.seq.desc())
            .limit(1)
            .scalar()
        )
        heard = extras.get("heard_at")
        age = time.time() - heard if heard else _age(k.last_seen, now)
        lost = k.outbox == 0 and (k.reported_seq or 0) > (k.applied_to or 0)
        problems = []
        if k.online and age is not None and age > stale:
            problems.append(f"silent for {ago(age)[:-4]}")
        if lost:
            problems.append(f"events {k.applied_to + 1}..{k.reported_seq} missing")
        if k.printer != "ok":
            problems.append(f"printer {k.printer.replace('_', ' ')}")
        if k.catalog_error:
            problems.append("refused the item master")
        update = extras.get("update") or {}
        if update.get("result") == "rolled_back":
            why = f": {update['reason']}" if update.get("reason") else ""
            problems.append(f"update to {update.get('version', '?')} rolled back{why}")
        red = bool(problems and (not k.online or lost or (age is not None and age > stale)))
        changed = extras.get("changed_at") or k.last_seen
        rows.append(
            {
                "device": k.device,
                "online": k.online,
                "since": changed,
                "since_ago": ago(_age(changed, now)),
                "last_seen_ago": ago(age),
                "last_sale": last_sale,
                "last_sale_ago": ago(_age(last_sale, now)),
                "outbox": k.outbox,
                "printer": k.printer,
                "catalog": k.catalog_version,
                "catalog_behind": version and (k.catalog_version or 0) < version,
                "catalog_error": k.catalog_error,
                "app": extras.get("app") or "-",
                "slot": update.get("slot"),
                "other_slot": update.get("other"),
                "clock": extras.get("clock") or "not said",
                "applied_to": k.applied_to,
                "reported_seq": k.reported_seq,
                "red": red,
                "problems": problems,
            }
        )
    return rows


def _render(request: Request, template: str):
    app.require(request)
    context = {"rows": kiosk_rows(app.web_of(request)), "version": master.current()[0]}
    return app.render(request, template, context)


@PAGE.route("/kiosks")
def kiosks_page(request: Request):
    return _render(request, "kiosks.html")


@PAGE.route("/kiosks/table")
def kiosks_table(request: Request):  # the live refresh of the table alone
    return _render(request, "kiosks_table.html")
