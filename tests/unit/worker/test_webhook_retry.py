"""When a webhook delivery is tried again, and after how long: pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.store.webhooks import Delivery
from worker.webhooks.dispatcher import attempt_result
from worker.webhooks.retry import backoff_s, next_delay_s, parse_retry_after, verdict
from worker.webhooks.sender import Answer

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "retry"),
        (200, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (301, "failed"),
        (307, "failed"),
        (400, "failed"),
        (404, "failed"),
        (408, "retry"),
        (410, "failed"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (599, "retry"),
    ],
)
def test_verdicts(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [
        (1, 0.0, 0.5),
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (4, 0.5, 6.0),
        (20, 1.0, 300.0),
        (10**6, 0.0, 150.0),
    ],
)
def test_backoff_doubles_with_jitter_up_to_the_cap(
    attempt: int, rng: float, expected: float
) -> None:
    assert backoff_s(attempt, base_s=1.0, max_s=300.0, rng=lambda: rng) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("1e3", None),
        ("٣", None),  # a digit, but not ASCII
        ("", None),
        ("soon", None),
        ("Fri, 99 Foo 2026 99:99:99 GMT", None),
        ("9" * 65, None),  # over-long: not parsed at all
        ("\x00\r\n", None),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_retry_after_never_raises_nor_goes_negative(header: str) -> None:
    value = parse_retry_after(header, NOW)
    assert value is None or value >= 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**9),
    st.floats(min_value=0.0, max_value=1.0),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e12)),
)
def test_the_delay_stays_within_its_cap(
    attempt: int, jitter: float, retry_after_s: float | None
) -> None:
    delay = next_delay_s(
        attempt, retry_after_s=retry_after_s, base_s=1.0, max_s=300.0, rng=lambda: jitter
    )
    assert 0.0 <= delay <= 300.0


def _delivery(attempts: int) -> Delivery:
    return Delivery("d", "e", "graph.completed", "hook", "h", "https://x", {}, NOW, attempts)


@pytest.mark.parametrize(
    ("answer", "attempts", "status", "retry_in_s"),
    [
        (Answer("delivered", 204, None, None, 0.1), 1, "delivered", None),
        (Answer("retry", 503, "HTTP 503", None, 0.1), 1, "pending", 1.0),
        (Answer("retry", 503, "HTTP 503", None, 0.1), 3, "pending", 4.0),
        (Answer("retry", 429, "HTTP 429", 42.0, 0.1), 1, "pending", 42.0),
        (Answer("retry", None, "timeout", None, 2.0), 5, "failed", None),  # out of attempts
        (Answer("failed", 404, "HTTP 404", None, 0.1), 1, "failed", None),
    ],
)
def test_attempt_results(
    answer: Answer, attempts: int, status: str, retry_in_s: float | None
) -> None:
    result = attempt_result(
        _delivery(attempts), answer, max_attempts=5, base_s=1.0, max_s=60.0, rng=lambda: 1.0
    )
    assert (result.status, result.retry_in_s) == (status, retry_in_s)
    assert result.status_code == answer.status_code


def test_a_date_retry_after_counts_from_now() -> None:
    header = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(header, NOW) == 90.0
