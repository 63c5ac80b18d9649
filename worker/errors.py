"""Errors a client sees: each carries its HTTP status and a stable ``code``.

Raised anywhere in the worker; the HTTP middleware renders them as
``{"error": {"code", "message"}}`` and the WebSocket as error frames. Messages are written
for the client: they never include a stack trace.
"""

from __future__ import annotations

from common.contract import AT_CAPACITY


class ApiError(Exception):
    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Unprocessable(ApiError):
    status, code = 422, "unprocessable"


class AtCapacity(ApiError):
    """503 ``at_capacity``: refused before anything was done, so any worker may retry it."""

    status, code = 503, AT_CAPACITY
