"""Every error leaves the worker as ``{"error": {"code", "message"}}`` with its status.

The middleware also binds the request id (``X-Request-ID``, set by the LB) for the logs.
Unexpected exceptions are logged with their traceback and answered with a plain 500: a
client never sees a stack trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from worker import jsonutil
from worker.errors import ApiError

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


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=jsonutil.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID")
    context = {"request_id": request_id} if request_id else {}
    with structlog.contextvars.bound_contextvars(**context):
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _CODES.get(exc.status, "http_error")
            response = error_response(exc.status, code, exc.reason)
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except Exception:
            log.exception("unhandled_error", method=request.method, path=request.path)
            return error_response(500, "internal", "internal error; see the worker's logs")
