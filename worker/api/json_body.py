"""Reading a JSON request body the way the official server does for the store and crons:
a body that is not JSON is 422 ``Invalid JSON in request body``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from worker.api.schemas import read_json
from worker.errors import BadRequest, Unprocessable


async def json_body(request: web.Request) -> Any:
    """The body as JSON (``None`` when empty); 422 when it is not JSON."""
    try:
        return await read_json(request)
    except BadRequest:
        raise Unprocessable("Invalid JSON in request body", code="invalid_json") from None
