"""The admin port: health, readiness, metrics, and the admin API under ``/admin``.

``/admin/*`` needs ``Authorization: Bearer <LB_ADMIN_TOKEN>`` (compared in constant time)
whenever a token is configured; the LB refuses to start with a non-loopback admin address and
no token. Before the token, :mod:`lb.admin_guard` refuses callers by ``Host`` and ``Origin``
(403) and writes that are not JSON (415); instance URLs into link-local or metadata ranges are
refused (422). Every error is JSON ``{"error": {"code", "message", "field"?}}``; a refused request
changes nothing.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from lb.admin_guard import CallerCheck, refused_host
from lb.components import COMPONENTS, Components
from lb.errors import error_response
from lb.fleet.control import Conflict
from lb.fleet.registry import INSTANCE_ID, Instance
from lb.routing.strategies import STRATEGIES, make_strategy
from lb.settings import parse_networks
from lb.status import views as status_views
from lb.status.auth import NO_SESSION, Denied
from lb.status.views import STATUS_PAGE

MAX_ADMIN_BODY_BYTES = 64 * 1024
CALLER_CHECK = web.AppKey("caller_check", CallerCheck)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Invalid(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


# -- open endpoints --------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok", "timestamp": time.time()})


async def ready(request: web.Request) -> web.Response:
    parts = request.app[COMPONENTS]
    routable = len(parts.registry.snapshot.routable)
    if parts.shutdown.begun or routable == 0:
        return _json({"ready": False, "routable_instances": routable}, status=503)
    return _json({"ready": True, "routable_instances": routable})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[COMPONENTS].metrics.registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


# -- validation ------------------------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_ADMIN_BODY_BYTES:
        raise Invalid(413, "body_too_large", f"body over {MAX_ADMIN_BODY_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Invalid(413, "body_too_large", f"body over {MAX_ADMIN_BODY_BYTES} bytes") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Invalid(400, "invalid_json", "the body must be a JSON object")
    return data


def _url(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(422, "invalid_field", "url must be a string", "url")
    try:
        parsed = URL(value)
    except ValueError:
        raise Invalid(422, "invalid_field", "url is not a valid URL", "url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid(422, "invalid_field", "url must be http(s)://host[:port]", "url")
    if parsed.query_string or parsed.fragment or parsed.user:
        raise Invalid(422, "invalid_field", "url must not carry a query, fragment or user", "url")
    return value.rstrip("/")


def _positive_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid(422, "invalid_field", f"{name} must be a positive integer", name)
    if value > 1_000_000:
        raise Invalid(422, "invalid_field", f"{name} must be at most 1000000", name)
    return value


def _instance_id(value: object) -> str:
    if not isinstance(value, str) or not INSTANCE_ID.fullmatch(value):
        raise Invalid(422, "invalid_field", "id must be 1-64 characters of A-Z a-z 0-9 . _ -", "id")
    return value


_REGISTER_FIELDS = frozenset({"url", "id", "max_capacity", "weight"})


# -- admin API ---------------------------------------------------------------------------------


async def list_instances(request: web.Request) -> web.Response:
    snapshot = request.app[COMPONENTS].registry.snapshot
    return _json({"instances": [i.to_json() for i in snapshot.instances]})


async def _check_address(parts: Components, url: str) -> None:
    """422 for a URL into a link-local or metadata range (see :mod:`lb.admin_guard`)."""
    if any(i.url == url for i in parts.registry.snapshot.instances):
        return  # a heartbeat repeats a URL checked when it was first registered
    allowed = parse_networks(parts.settings.instance_allow_networks)
    refused = await refused_host(URL(url).host or "", allowed)
    if refused is not None:
        raise Invalid(
            422,
            "refused_address",
            f"url points at {refused}, a link-local or metadata address "
            "(allow it with LB_INSTANCE_ALLOW_NETWORKS)",
            "url",
        )


async def register_instance(request: web.Request) -> web.Response:
    parts = request.app[COMPONENTS]
    data = await _body(request)
    unknown = sorted(set(data) - _REGISTER_FIELDS)
    if unknown:
        raise Invalid(422, "unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    url = _url(data.get("url"))
    await _check_address(parts, url)
    instance_id = _instance_id(data["id"]) if data.get("id") is not None else None
    max_capacity = _positive_int(data, "max_capacity")
    weight = _positive_int(data, "weight")
    try:
        instance, created = parts.membership.register(url, instance_id, max_capacity, weight)
    except Conflict as exc:
        raise Invalid(409, "conflict", str(exc), "id" if instance_id else "url") from None
    if created:
        # Check it now rather than at the next interval: a new worker takes traffic at once.
        await parts.health.check(instance)
        instance = parts.registry.get(instance.id) or instance
    return _json(instance.to_json(), status=201 if created else 200)


def _existing(request: web.Request) -> Instance:
    instance_id = request.match_info["instance_id"]
    instance = request.app[COMPONENTS].registry.get(instance_id)
    if instance is None:
        raise Invalid(404, "not_found", f"no instance {instance_id!r}")
    return instance


async def get_instance(request: web.Request) -> web.Response:
    return _json(_existing(request).to_json())


async def delete_instance(request: web.Request) -> web.Response:
    instance = _existing(request)
    parts = request.app[COMPONENTS]
    parts.membership.remove(instance.id)
    current = parts.registry.get(instance.id)
    body = current.to_json() if current is not None else {**instance.to_json(), "removed": True}
    return _json(body, status=202)


async def drain_instance(request: web.Request) -> web.Response:
    instance = _existing(request)
    updated = request.app[COMPONENTS].membership.drain(instance.id) or instance
    return _json(updated.to_json())


async def enable_instance(request: web.Request) -> web.Response:
    instance = _existing(request)
    updated = request.app[COMPONENTS].membership.enable(instance.id) or instance
    return _json(updated.to_json())


async def get_strategy(request: web.Request) -> web.Response:
    return _json({"strategy": request.app[COMPONENTS].router.strategy.name})


async def put_strategy(request: web.Request) -> web.Response:
    parts = request.app[COMPONENTS]
    data = await _body(request)
    name = data.get("strategy")
    if not isinstance(name, str) or name not in STRATEGIES:
        raise Invalid(
            422, "invalid_field", f"strategy must be one of {', '.join(STRATEGIES)}", "strategy"
        )
    parts.router.strategy = make_strategy(name, parts.rng)
    return _json({"strategy": name})


async def get_autoscaler(request: web.Request) -> web.Response:
    autoscaler = request.app[COMPONENTS].autoscaler
    if autoscaler is None:
        return _json({"backend": "off"})
    return _json(autoscaler.describe())


async def put_autoscaler(request: web.Request) -> web.Response:
    autoscaler = request.app[COMPONENTS].autoscaler
    data = await _body(request)
    if autoscaler is None:
        raise Invalid(409, "autoscaler_off", "the autoscaler is off (LB_AUTOSCALE=off)")
    unknown = sorted(set(data) - {"min", "max", "paused"})
    if unknown:
        raise Invalid(422, "unknown_field", f"unknown field {unknown[0]!r}", unknown[0])
    changes: dict[str, Any] = {}
    low = data.get("min", autoscaler.config.min_instances)
    high = data.get("max", autoscaler.config.max_instances)
    for name, value in (("min", low), ("max", high)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Invalid(422, "invalid_field", f"{name} must be a non-negative integer", name)
    if high < max(low, 1):
        raise Invalid(422, "invalid_field", "max must be at least min and at least 1", "max")
    changes.update(min_instances=low, max_instances=high)
    if "paused" in data:
        if not isinstance(data["paused"], bool):
            raise Invalid(422, "invalid_field", "paused must be true or false", "paused")
        changes["paused"] = data["paused"]
    autoscaler.reconfigure(**changes)
    return _json(autoscaler.describe())


# -- middleware ------------------------------------------------------------------------------


def _unauthorized(request: web.Request, token: str) -> web.Response | None:
    """``None`` when the request may use the admin API: the right bearer token or, without an
    Authorization header, a status page session (with its CSRF token on writes)."""
    supplied = request.headers.get("Authorization")
    if supplied is not None:
        if hmac.compare_digest(supplied.encode("utf-8", "replace"), f"Bearer {token}".encode()):
            return None
        denied: Denied | None = NO_SESSION
    else:
        page = request.app.get(STATUS_PAGE)
        denied = NO_SESSION if page is None else page.authorize(request)
    if denied is None:
        return None
    headers = {"WWW-Authenticate": "Bearer"} if denied.status == 401 else None
    return error_response(denied.status, denied.code, denied.message, headers=headers)


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    parts = request.app[COMPONENTS]
    is_admin = request.path.startswith("/admin")
    route = request.match_info.route.resource
    operation = f"{request.method} {route.canonical if route is not None else 'unmatched'}"
    outcome = "error"
    try:
        refusal = _caller_refusal(request) if is_admin else None
        if refusal is not None:
            outcome = "forbidden"
            return refusal
        if is_admin and parts.settings.admin_token:
            denied = _unauthorized(request, parts.settings.admin_token)
            if denied is not None:
                outcome = "unauthorized"
                return denied
        try:
            response = await handler(request)
        except Invalid as exc:
            outcome = "rejected"
            return error_response(exc.status, exc.code, exc.message, field=exc.field)
        except web.HTTPException as exc:
            outcome = "rejected"
            if exc.status < 400:
                raise
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        outcome = "ok" if response.status < 400 else "rejected"
        return response
    finally:
        if is_admin:
            parts.metrics.admin_requests.labels(operation, outcome).inc()


def _caller_refusal(request: web.Request) -> web.Response | None:
    """403 for a caller named by the wrong ``Host`` or ``Origin``; 415 for a write that is
    not JSON (see :mod:`lb.admin_guard`)."""
    check = request.app[CALLER_CHECK]
    headers = request.headers
    if not check.host_allowed(headers.get("Host")):
        return error_response(403, "forbidden_host", "this Host may not call the admin API")
    if not check.origin_allowed(headers.get("Origin")):
        return error_response(403, "forbidden_origin", "this Origin may not call the admin API")
    if check.content_type_refused(request.method, headers.get("Content-Type"), request.body_exists):
        return error_response(
            415, "unsupported_media_type", "admin writes take Content-Type: application/json"
        )
    return None


def admin_app(parts: Components) -> web.Application:
    """The admin port's app over ``parts``; the caller adds the background loops."""
    app = web.Application(client_max_size=MAX_ADMIN_BODY_BYTES, middlewares=[admin_middleware])
    app[COMPONENTS] = parts
    app[CALLER_CHECK] = CallerCheck(parts.settings.admin_host, parts.settings.admin_allowed_hosts)
    r = app.router
    r.add_get("/health", health)
    r.add_get("/ready", ready)
    r.add_get("/metrics", metrics)
    r.add_get("/admin/instances", list_instances)
    r.add_post("/admin/instances", register_instance)
    r.add_get("/admin/instances/{instance_id}", get_instance)
    r.add_delete("/admin/instances/{instance_id}", delete_instance)
    r.add_post("/admin/instances/{instance_id}/drain", drain_instance)
    r.add_post("/admin/instances/{instance_id}/enable", enable_instance)
    r.add_get("/admin/strategy", get_strategy)
    r.add_put("/admin/strategy", put_strategy)
    r.add_get("/admin/autoscaler", get_autoscaler)
    r.add_put("/admin/autoscaler", put_autoscaler)
    status_views.add_routes(app, status_views.build(parts))
    return app
