"""Sessions of the status page: the admin token asked once, then a cookie.

- Logging in compares the token with ``LB_ADMIN_TOKEN`` in constant time and creates a
  server-side session: a random id (256 bits) in an ``HttpOnly; SameSite=Strict`` cookie,
  ``Secure`` when the admin port is reached over HTTPS. Sessions expire after ``ttl_s``;
  at most :data:`MAX_SESSIONS` live at once (the oldest go first). The store keys sessions
  by the SHA-256 of their id, so a lookup's timing says nothing about valid ids.
- CSRF: a *synchronizer token*, random per session and kept server-side with it. The page
  gets it in its HTML and sends it as ``X-CSRF-Token`` on every write; the server compares it
  in constant time. Chosen over double-submit because the session is server-side anyway:
  the token needs no second cookie readable by scripts, and a cookie planted by a sibling
  origin cannot forge it. SameSite=Strict is the second wall.

The admin middleware asks :meth:`SessionStore.authorize` when a request carries no bearer
token, so the page's actions are the admin API's own calls, through the same checks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "graphfleet_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 1000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a request without a bearer token is refused: status, code, message."""

    status: int
    code: str
    message: str


NO_SESSION = Denied(401, "unauthorized", "missing or wrong bearer token")
BAD_CSRF = Denied(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).digest()


def token_matches(supplied: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (their lengths may leak, not their bytes)."""
    return hmac.compare_digest(supplied.encode("utf-8", "replace"), expected.encode())


class SessionStore:
    """Server-side sessions with expiry; the clock and the random source are injected."""

    def __init__(
        self,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._token = token
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> Session:
        self._expire()
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session = Session(self._token(), self._token(), self._clock() + self.ttl_s)
        self._sessions[_key(session.id)] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id; an expired one is forgotten and is ``None``."""
        if not session_id or len(session_id) > 256:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[key]
            return None
        return session

    def delete(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(_key(session_id), None)

    def authorize(self, method: str, session_id: str | None, csrf: str | None) -> Denied | None:
        """``None`` when the session allows the request: reads need a live session, writes
        also its CSRF token."""
        session = self.get(session_id)
        if session is None:
            return NO_SESSION
        if method in SAFE_METHODS:
            return None
        if csrf is None or not token_matches(csrf, session.csrf_token):
            return BAD_CSRF
        return None

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
