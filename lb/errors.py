"""JSON error responses made by the load balancer itself."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """``{"error": {"code", "message", ...}}`` with the given status; never a stack trace."""
    body: dict[str, object] = {"code": code, "message": message}
    body.update(extra)
    return web.Response(
        status=status,
        body=orjson.dumps({"error": body}),
        content_type="application/json",
        headers=headers,
    )
