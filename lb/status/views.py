"""The status page's routes on the admin app, and its lifecycle.

- ``GET /``: the page; with ``LB_ADMIN_TOKEN`` set and no live session, only the login form.
  With no token (a loopback-only admin port) the page is open, as the admin API is.
- ``GET /status/assets/{name}``: its CSS and JS, package data read once at start-up; no
  asset comes from the network.
- ``POST /status/login`` ``{"token"}`` → a session cookie; ``POST /status/logout``.
- ``GET /admin/status``: the status document (``lb.status.model``), behind the admin API's
  own authentication (a bearer token, or the page's session).

Every error is the admin API's JSON ``{"error": {"code", "message"}}``; a refused login
creates nothing.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from lb.components import Components
from lb.errors import error_response
from lb.routing.strategies import STRATEGIES
from lb.status.auth import COOKIE, CSRF_HEADER, Denied, SessionStore, token_matches
from lb.status.model import status_document
from lb.status.sampler import Sampler

MAX_LOGIN_BODY_BYTES = 4096
ASSETS = {
    "status.css": "text/css",
    "status.js": "text/javascript",
    "login.js": "text/javascript",
}
# Everything the page loads comes from the admin port itself; nothing may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class StatusPage:
    """What the routes need: the sampler, the sessions, the token, and the live sources."""

    sampler: Sampler
    sessions: SessionStore
    admin_token: str
    document: Callable[[], dict[str, Any]]
    files: dict[str, str]

    def authorize(self, request: web.Request) -> Denied | None:
        """For the admin middleware: may this request, which has no bearer token, go on?"""
        return self.sessions.authorize(
            request.method, request.cookies.get(COOKIE), request.headers.get(CSRF_HEADER)
        )


STATUS_PAGE = web.AppKey("status_page", StatusPage)


def load_files() -> dict[str, str]:
    """The page's templates and assets, from the package (read at start-up, not import)."""
    folder = resources.files("lb.status") / "static"
    names = (*ASSETS, "page.html", "login.html")
    return {name: (folder / name).read_text(encoding="utf-8") for name in names}


def _html(body: str) -> web.Response:
    return web.Response(
        text=body, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
    )


async def page(request: web.Request) -> web.Response:
    status = request.app[STATUS_PAGE]
    if not status.admin_token:
        return _html(_render(status.files["page.html"], csrf_token="", logout_class="hidden"))
    session = status.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return _html(status.files["login.html"])
    return _html(_render(status.files["page.html"], csrf_token=session.csrf_token, logout_class=""))


def _render(template: str, **values: str) -> str:
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", html.escape(value, quote=True))
    return template


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        return error_response(404, "not_found", f"no asset {name!r}")
    return web.Response(
        text=request.app[STATUS_PAGE].files[name],
        content_type=content_type,
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


async def _login_token(request: web.Request) -> str | web.Response:
    too_large = f"body over {MAX_LOGIN_BODY_BYTES} bytes"
    if request.content_length is not None and request.content_length > MAX_LOGIN_BODY_BYTES:
        return error_response(413, "body_too_large", too_large)
    try:
        raw = await request.read()  # a chunked body: bounded by the app's client_max_size
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large", too_large)
    if len(raw) > MAX_LOGIN_BODY_BYTES:
        return error_response(413, "body_too_large", too_large)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_response(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        return error_response(422, "invalid_field", "token must be a string", field="token")
    token: str = data["token"]
    return token


async def login(request: web.Request) -> web.Response:
    status = request.app[STATUS_PAGE]
    token = await _login_token(request)
    if isinstance(token, web.Response):
        return token
    if not status.admin_token:
        return error_response(409, "no_token", "no admin token is set: the page is open")
    if not token_matches(token, status.admin_token):
        return error_response(401, "unauthorized", "wrong admin token")
    session = status.sessions.create()
    response = web.json_response({"csrf_token": session.csrf_token}, dumps=_dumps)
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(status.sessions.ttl_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    status = request.app[STATUS_PAGE]
    denied = status.authorize(request)
    if denied is not None:
        return error_response(denied.status, denied.code, denied.message)
    status.sessions.delete(request.cookies.get(COOKIE))
    response = web.json_response({"signed_out": True}, dumps=_dumps)
    response.del_cookie(COOKIE, path="/")
    return response


async def status_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATUS_PAGE].document(), dumps=_dumps)


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def add_routes(app: web.Application, status: StatusPage) -> None:
    """Register the page's routes and run its sampler for the app's lifetime."""
    app[STATUS_PAGE] = status
    r = app.router
    r.add_get("/", page)
    r.add_get("/status/assets/{name}", asset)
    r.add_post("/status/login", login)
    r.add_post("/status/logout", logout)
    r.add_get("/admin/status", status_json)

    async def sampling(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(status.sampler.run(), name="status-sampler")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(sampling)


def build(parts: Components) -> StatusPage:
    """The status page of one LB process: call inside the event loop."""
    settings = parts.settings
    sampler = Sampler(
        instances=lambda: parts.registry.snapshot.instances,
        requests=parts.metrics.requests,
        durations=parts.metrics.request_duration,
        autoscaler=lambda: parts.autoscaler,
        session=parts.session,
        interval_s=settings.status_interval_s,
        history_s=settings.status_history_s,
    )

    def document() -> dict[str, Any]:
        sampler.watch()
        autoscaler = parts.autoscaler
        return status_document(
            instances=parts.registry.snapshot.instances,
            now=parts.registry.now(),
            wall_now=time.time(),
            strategy=parts.router.strategy.name,
            strategies=list(STRATEGIES),
            autoscaler=None if autoscaler is None else autoscaler.describe(),
            sampler=sampler,
        )

    return StatusPage(
        sampler=sampler,
        sessions=SessionStore(settings.status_session_ttl_s),
        admin_token=settings.admin_token,
        document=document,
        files=load_files(),
    )
