"""JSON error responses made by the load balancer itself."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    field: str | None = None,
) -> web.Response:
    """``{"error": {"code", "message", "field"?}}`` with the given status; ``field`` names the
    request field at fault. Never a stack trace."""
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.Response(
        status=status,
        body=orjson.dumps({"error": body}),
        content_type="application/json",
        headers=headers,
    )
