"""The web view's Starlette app: page registry, templates, guards, CSRF, login.

See the package's docstring for how a page module registers itself.
"""

from __future__ import annotations

import importlib
import io
import logging
import math
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kiosk import __version__
from kiosk.config import Config
from kiosk.mqtt.web import auth, live

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
# Page modules, in kiosk.mqtt.web; a listed module that does not exist is skipped.
PAGE_MODULES = ("stock", "kiosks", "alert_page", "kpis", "updates", "dead")
MAX_FORM = 64 * 1024  # bytes of a form body; larger is refused (413)
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


Handler = Callable[[Request], Any]


@dataclass
class Page:
    name: str
    title: str
    path: str  # where the navigation bar links to
    routes: list = field(default_factory=list)
    order: int = 100
    role: str = "attendant"  # the least role that sees it in the navigation bar

    def route(self, path: str, methods: list[str] | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated handler under `path` (in the order handlers are
        defined, which is the order Starlette matches them in)."""

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(path, handler, methods=methods))
            return handler

        return register


class Redirect(Exception):
    def __init__(self, url: str):
        self.url = url


class Forbidden(Exception):
    pass


@dataclass
class Web:
    """What every handler reaches as request.app.state.web."""

    config: Config
    live: live.Live
    sessions: auth.Sessions
    relay: Any = None  # kiosk.mqtt.web.relay.Relay, or None (tests of pages alone)
    https: bool = False
    pages: list[Page] = field(default_factory=list)
    templates: Environment | None = None


def web_of(request: Request) -> Web:
    return request.app.state.web


def current(request: Request) -> auth.Session | None:
    return web_of(request).sessions.get(request.cookies.get(auth.SESSION_COOKIE))


def require(request: Request, role: str = "attendant") -> auth.Session:
    """The logged-in session, with at least `role`; else to /login (or 403)."""
    session = current(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Redirect(f"/login?next={quote(target)}")
    if role == "manager" and session.role != "manager":
        raise Forbidden()
    return session


def form(request: Request) -> dict[str, str]:
    """The urlencoded body of an unsafe request (parsed by the CSRF middleware)."""
    return request.scope.get("kiosk.form", {})


def render(request: Request, template: str, context: dict | None = None, status: int = 200):
    web = web_of(request)
    session = current(request)
    csrf = session.csrf if session else request.scope.get("kiosk.login_csrf", "")
    pages = [p for p in web.pages if session and (p.role != "manager" or session.role == "manager")]
    body = web.templates.get_template(template).render(
        request=request,
        session=session,
        pages=pages,
        csrf=csrf,
        csrf_input=Markup(f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'),
        app_version=__version__,
        **(context or {}),
    )
    return HTMLResponse(body, status_code=status)


# ------------------------------------------------------------------ CSRF


class CsrfMiddleware:
    """Refuses every unsafe request without the right token (see auth's docstring).
    Reads the (bounded) body once, keeps the parsed form in the scope, and replays the
    body to the app."""

    def __init__(self, app, web: Web):
        self.app = app
        self.web = web

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in UNSAFE:
            return await self.app(scope, receive, send)
        request = Request(scope)
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM:
                return await PlainTextResponse("request too large", 413)(scope, receive, send)
        fields: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            try:
                fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                fields = {}
        given = request.headers.get("x-csrf-token") or fields.get("csrf_token")
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        if origin and origin != "null" and urlsplit(origin).netloc != host:
            ok = False
        elif scope["path"] == "/login":
            ok = auth.same_token(given, request.cookies.get(auth.LOGIN_CSRF_COOKIE))
        else:
            session = self.web.sessions.get(request.cookies.get(auth.SESSION_COOKIE))
            ok = session is not None and auth.same_token(given, session.csrf)
        if not ok:
            log.warning("refused %s %s: no valid CSRF token", scope["method"], scope["path"])
            response = PlainTextResponse("refused: missing or wrong CSRF token", 403)
            return await response(scope, receive, send)
        scope["kiosk.form"] = fields
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# ------------------------------------------------------------------ built-in routes


def _safe_next(target: str | None) -> str:
    """A path on this site only: never "//host" or "/\\host" (browsers read both as
    another site), never a scheme."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return "/"
    if any(c in target for c in "\\\r\n\t") or len(target) > 500:
        return "/"
    return target


def login_page(request: Request):
    import secrets  # noqa: PLC0415

    token = request.cookies.get(auth.LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.scope["kiosk.login_csrf"] = token
    response = render(
        request,
        "login.html",
        {"next": _safe_next(request.query_params.get("next")), "error": None},
    )
    _set_cookie(request, response, auth.LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


def login_post(request: Request):
    web = web_of(request)
    data = form(request)
    cfg = web.config.controller
    try:
        name, role = auth.authenticate(
            data.get("user", ""),
            data.get("password", ""),
            cfg.web_lockout_attempts,
            cfg.web_lockout_minutes,
        )
    except auth.AuthError as exc:
        request.scope["kiosk.login_csrf"] = request.cookies.get(auth.LOGIN_CSRF_COOKIE, "")
        return render(
            request,
            "login.html",
            {"next": _safe_next(data.get("next")), "error": str(exc), "user": data.get("user")},
            status=401,
        )
    session = web.sessions.create(name, role)
    log.info("web login: %s (%s)", name, role)
    response = RedirectResponse(_safe_next(data.get("next")), 303)
    _set_cookie(request, response, auth.SESSION_COOKIE, session.token)
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE)
    return response


def logout(request: Request):
    web_of(request).sessions.end(request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(auth.SESSION_COOKIE)
    return response


def _set_cookie(request, response, name, value, max_age=None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=web_of(request).https,
    )


def home(request: Request):
    require(request)
    web = web_of(request)
    return RedirectResponse(web.pages[0].path if web.pages else "/alerts", 303)


async def events(request: Request):
    if current(request) is None:
        return PlainTextResponse("log in first", 401)
    return StreamingResponse(
        live.stream(web_of(request).live),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def chime_wav() -> bytes:
    """The alert sound: two short tones, 8 kHz mono, generated (no file in the package)."""
    out = io.BytesIO()
    rate = 8000
    frames = bytearray()
    for freq, ms in ((880, 160), (0, 40), (660, 220)):
        n = rate * ms // 1000
        for i in range(n):
            fade = min(1.0, i / 80, (n - i) / 80)
            sample = int(9000 * fade * math.sin(2 * math.pi * freq * i / rate)) if freq else 0
            frames += struct.pack("<h", sample)
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


_CHIME: bytes | None = None


def chime(request: Request):
    global _CHIME  # noqa: PLW0603
    if _CHIME is None:
        _CHIME = chime_wav()
    return Response(_CHIME, media_type="audio/wav", headers={"Cache-Control": "max-age=86400"})


def health(request: Request):
    return PlainTextResponse("ok")


# ------------------------------------------------------------------ the app


def load_pages(web: Web, modules: tuple[str, ...] = PAGE_MODULES) -> list[Page]:
    pages = []
    for name in modules:
        qualified = f"kiosk.mqtt.web.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue  # not written yet
            raise
        pages.append(module.PAGE if hasattr(module, "PAGE") else module.setup(web))
    return sorted(pages, key=lambda p: p.order)


def build_app(
    config: Config,
    relay: Any = None,
    live_hub: live.Live | None = None,
    https: bool = False,
    modules: tuple[str, ...] = PAGE_MODULES,
) -> Starlette:
    cfg = config.controller
    web = Web(
        config=config,
        live=live_hub or live.Live(),
        sessions=auth.Sessions(cfg.web_session_hours * 3600),
        relay=relay,
        https=https,
    )
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = lambda name: f"/static/{name}?v={__version__}"
    web.templates = env
    web.pages = load_pages(web, modules)
    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/events", events),
        Route("/health", health),
        Route("/static/chime.wav", chime),
    ]
    for page in web.pages:
        routes += page.routes
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))

    async def redirect(request, exc: Redirect):
        return RedirectResponse(exc.url, 303)

    async def forbidden(request, exc: Forbidden):
        return PlainTextResponse("managers only", 403)

    app = Starlette(routes=routes, exception_handlers={Redirect: redirect, Forbidden: forbidden})
    app.state.web = web
    app.add_middleware(CsrfMiddleware, web=web)
    return app
