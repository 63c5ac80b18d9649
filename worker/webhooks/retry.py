"""When to try a delivery again: pure decisions, with the RNG injected.

- Retried: connection errors and timeouts, 5xx, 408 and 429; never other 4xx (the receiver
  said no) nor a redirect (3xx are not followed: the target could be anywhere).
- Delay: ``base_s * 2**(attempt-1)``, capped at ``max_s``, with "full jitter" between half
  and all of it, so a receiver coming back is not hit by every sender at once. A
  ``Retry-After`` from the receiver (429/503) replaces the computed delay, capped too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "failed"]
RETRY_AFTER_MAX_CHARS = 64


def verdict(status_code: int | None) -> Verdict:
    """What an answer (None: no answer, connection error or timeout) means for a delivery."""
    if status_code is None:
        return "retry"
    if 200 <= status_code < 300:
        return "delivered"
    if status_code >= 500 or status_code in (408, 429):
        return "retry"
    return "failed"


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: Callable[[], float]) -> float:
    """Delay after failed attempt number ``attempt`` (1-based), jittered with ``rng()``."""
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 62))
    return ceiling * (0.5 + 0.5 * rng())


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (RFC 9110 §10.2.3: delay-seconds or an
    HTTP-date), or None when absent or not valid. Never negative; over-long values are
    ignored rather than parsed."""
    if value is None or len(value) > RETRY_AFTER_MAX_CHARS:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def next_delay_s(
    attempt: int,
    *,
    retry_after_s: float | None,
    base_s: float,
    max_s: float,
    rng: Callable[[], float],
) -> float:
    """The delay before the next attempt: the receiver's ``Retry-After`` when it gave one,
    else the jittered backoff; at most ``max_s`` either way."""
    if retry_after_s is not None:
        return min(retry_after_s, max_s)
    return backoff_s(attempt, base_s=base_s, max_s=max_s, rng=rng)
