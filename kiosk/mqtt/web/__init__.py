"""The shop controller's web view for managers and attendants (issue 18).

Started with the controller when ``[controller] web_port`` is set (off by default):
Starlette (ASGI) served by uvicorn in a thread of the controller's process, Jinja2
templates, server-sent events for live updates, every asset served from
``static/`` (no CDN). The view reads the controller's store (kiosk.mqtt.store)
and hears the broker through its own MQTT link (relay.py), which also carries the
attendant alerts between kiosks and the shop.

Modules:
    app.py      build_app(): the Starlette app, the page registry, render(), guards
    auth.py     web users (scrypt hashes), sessions, lockout, CSRF, login/logout
    live.py     the in-process broadcaster behind /events (server-sent events)
    relay.py    the MQTT link: levels, statuses and alerts in; alerts and levels out
    server.py   WebService: relay + uvicorn in a thread, started/stopped by the controller
    stock.py, kiosks.py, alert_page.py, dead.py   the pages

HOW TO ADD A PAGE (e.g. kiosk/mqtt/web/kpis.py): make the module's page and register its
handlers on it, in the order Starlette should match them:

    PAGE = app.Page("kpis", "KPIs", "/kpis", order=40, role="manager")

    @PAGE.route("/kpis")
    def kpis_page(request): ...

    @PAGE.route("/kpis/export", methods=["POST"])
    def export(request): ...

where ``Page`` comes from kiosk.mqtt.web.app, and list the module's name in
``PAGE_MODULES`` in app.py (a listed module that does not exist yet is skipped; a module
may instead define ``setup(web) -> Page`` when its page depends on the configuration).
``order`` places the page in the navigation bar (stock 10, kiosks 20, alerts 30,
dead letters 50). Handlers are plain ``def`` (Starlette runs them in its thread
pool, so peewee queries on the store are fine) or ``async def``. In a handler:

    user = app.require(request, "manager")   # or "attendant"; redirects to /login
    return app.render(request, "kpis.html", {"rows": rows})

Templates go in web/templates/ and extend "base.html" (block ``content``; block
``scripts`` for page scripts: ``<script src="{{ static('kpis.js') }}"></script>``).
The charting library is uPlot, vendored as static/uPlot.iife.min.js (+ uPlot.min.css).
A form that changes anything posts ``csrf_token`` (``{{ csrf_input() }}`` in a form;
``fetch`` sends the header ``X-CSRF-Token: {{ csrf }}``): the middleware refuses any
POST, PUT, PATCH or DELETE without it (403).
"""
