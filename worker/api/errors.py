"""Every error leaves the worker as JSON with its status, in the shape of the API it hit.

- The LangGraph Server API (every route but the simple API's): ``{"detail": message,
  "error": {"code", "message"}}`` — ``detail`` is what the official server sends and its
  SDKs show; ``error`` is graphfleet's own shape (the LB reads ``error.code``). A body that
  is not JSON is 422 there, as on the official server, and a path id that is not a UUID
  (``thread_id``, ``run_id``, ``cron_id``, ``assistant_id``) is 422 before any handler runs.
- The simple API (``/graphs/...``, ``/executions/...``, ``/ws/...``): ``{"error": {"code",
  "message"}}``, as it always was.

The middleware also binds the request id (``X-Request-ID``, set by the LB) for the logs.
Unexpected exceptions are logged with their traceback and answered with a plain 500: a
client never sees a stack trace.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from worker import jsonutil
from worker.errors import ApiError, Unprocessable

log = structlog.get_logger("worker.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
}
SIMPLE_API_PREFIXES = ("/graphs/", "/executions/", "/ws/")
# Path parameters that are UUIDs on every LangGraph route, and how the official server
# words a malformed one.
_ID_PARAMS = {
    "thread_id": "Invalid thread ID: must be a UUID",
    "run_id": "Invalid run ID: must be a UUID",
    "cron_id": "Invalid cron ID: must be a UUID",
    "assistant_id": "Invalid assistant ID: must be a UUID",
}
# Routes whose assistant_id may also be a graph name (as on the official server).
GRAPH_NAME_ROUTES = frozenset({"/assistants/{assistant_id}/graph"})
# Codes whose status differs on the LangGraph API (the official server's statuses).
_LANGGRAPH_STATUS = {"invalid_json": 422}


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=jsonutil.dumps(body), status=status, content_type="application/json", headers=headers
    )


def is_simple_api(path: str) -> bool:
    return path.startswith(SIMPLE_API_PREFIXES)


def error_body(code: str, message: str, *, simple: bool) -> dict[str, Any]:
    """The body of an error: graphfleet's ``error`` object, plus ``detail`` on LangGraph routes."""
    error = {"code": code, "message": message}
    return {"error": error} if simple else {"detail": message, "error": error}


def error_response(status: int, code: str, message: str, *, simple: bool) -> web.Response:
    return json_response(error_body(code, message, simple=simple), status=status)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def require_uuid(value: str, what: str) -> str:
    """``value`` when it is a UUID; 422 ``invalid_id`` naming ``what`` otherwise."""
    if not is_uuid(value):
        raise Unprocessable(f"Invalid {what} ID: must be a UUID", code="invalid_id")
    return value


def check_path_ids(request: web.Request) -> None:
    """422 for a UUID path parameter of a LangGraph route that is not one."""
    match_info = request.match_info
    if not match_info:
        return
    for name, message in _ID_PARAMS.items():
        value = match_info.get(name)
        if value is None or is_uuid(value):
            continue
        resource = match_info.route.resource
        route = resource.canonical if resource is not None else ""
        if name == "assistant_id" and route in GRAPH_NAME_ROUTES:
            continue
        raise Unprocessable(message, code="invalid_id")


def _render(exc: ApiError, simple: bool) -> web.Response:
    status = exc.status if simple else _LANGGRAPH_STATUS.get(exc.code, exc.status)
    return error_response(status, exc.code, exc.message, simple=simple)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID")
    context = {"request_id": request_id} if request_id else {}
    simple = is_simple_api(request.path)
    with structlog.contextvars.bound_contextvars(**context):
        try:
            if not simple:
                check_path_ids(request)
            return await handler(request)
        except ApiError as exc:
            return _render(exc, simple)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _CODES.get(exc.status, "http_error")
            response = error_response(exc.status, code, exc.reason, simple=simple)
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception:
            log.exception("unhandled_error", method=request.method, path=request.path)
            message = "internal error; see the worker's logs"
            return error_response(500, "internal", message, simple=simple)
