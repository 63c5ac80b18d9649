"""One delivery attempt: build the body, sign it, POST it, and say how it went.

No redirect is followed (a 3xx fails the delivery: the new target was never checked), and
names resolve through the session's ``GuardedResolver``; an IP-literal host, which aiohttp
does not resolve, is checked here. The answer's body is never read.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from worker import jsonutil
from worker.store.webhooks import Delivery
from worker.webhooks import retry, signing
from worker.webhooks.addresses import AddressPolicy, AddressRefused
from worker.webhooks.events import RUN_WEBHOOK_EVENT

USER_AGENT = "graphfleet-webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: a status code, or an error; how long it took."""

    verdict: retry.Verdict
    status_code: int | None
    error: str | None
    retry_after_s: float | None
    duration_s: float


def body_of(delivery: Delivery, now: datetime) -> dict[str, Any]:
    """The JSON a receiver gets: a run's own webhook gets the run (LangGraph Platform's
    shape); hooks get ``{"event_type", "timestamp", "data", "webhook_id"}``."""
    if delivery.event_type == RUN_WEBHOOK_EVENT:
        return delivery.data | {"webhook_sent_at": now.isoformat()}
    return {
        "event_type": delivery.event_type,
        "timestamp": delivery.event_created_at.isoformat(),
        "data": delivery.data,
        "webhook_id": delivery.hook_id,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Sender:
    """Sends attempts on ``session`` (whose connector resolves through the policy)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: AddressPolicy,
        *,
        timeout_s: float,
        config_secret: str | None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._session = session
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._config_key = signing.secret_key(config_secret) if config_secret else None
        self._clock = clock

    def _key(self, delivery: Delivery) -> bytes | None:
        if delivery.secret:
            return signing.secret_key(delivery.secret)
        return self._config_key

    async def attempt(self, delivery: Delivery) -> Answer:
        now = self._clock()
        body = jsonutil.dumps(body_of(delivery, now))
        headers = {
            **delivery.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signing.headers(self._key(delivery), delivery.event_id, int(now.timestamp()), body),
        }
        started = time.monotonic()
        try:
            await self._check_literal(delivery.url)
            async with self._session.post(
                delivery.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = retry.parse_retry_after(response.headers.get("Retry-After"), now)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            refused = _refusal(exc)
            duration_s = time.monotonic() - started
            if refused is not None:
                return Answer("failed", None, f"refused: {refused}", None, duration_s)
            return Answer("retry", None, _describe(exc), None, duration_s)
        duration_s = time.monotonic() - started
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return Answer(retry.verdict(status), status, error, retry_after, duration_s)

    async def _check_literal(self, url: str) -> None:
        """aiohttp connects to an IP-literal host without resolving it: check it here (names
        are checked by the session's resolver, on the very answer it connects to)."""
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return
        await self._policy.addresses(host, 0)


def _refusal(exc: BaseException) -> str | None:
    """The policy's reason when ``exc`` is (or wraps) an ``AddressRefused``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return str(seen)
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    return type(exc).__name__
