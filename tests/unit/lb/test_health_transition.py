"""The pure half of active health checks: reading an answer and deciding what changes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lb.fleet.health import CheckResult, background_runs, parse_health, transition
from lb.fleet.registry import Health, Instance
from tests.unit.lb.helpers import instance

NOW = 100.0
PASS = CheckResult(ok=True)
DRAINING = CheckResult(ok=True, draining=True)
FAIL = CheckResult(ok=False, reason="ClientConnectorError")


def streak(health: Health, successes: int = 0, failures: int = 0, **fields: Any) -> Instance:
    return instance(
        "w", health=health, consecutive_successes=successes, consecutive_failures=failures, **fields
    )


def passed(successes: int, **changes: Any) -> dict[str, Any]:
    """What every passing check changes, plus ``changes``."""
    return {
        "last_check_at": NOW,
        "last_seen_at": NOW,
        "consecutive_successes": successes,
        "consecutive_failures": 0,
        "worker_draining": False,
        **changes,
    }


def failed(failures: int, **changes: Any) -> dict[str, Any]:
    """What every failing check changes, plus ``changes``."""
    return {
        "last_check_at": NOW,
        "consecutive_failures": failures,
        "consecutive_successes": 0,
        **changes,
    }


@pytest.mark.parametrize(
    ("before", "result", "rise", "fall", "expected"),
    [
        # unknown: the first pass is enough, failures need the fall threshold
        pytest.param(
            streak(Health.UNKNOWN), PASS, 2, 3, passed(1, health=Health.HEALTHY), id="unknown-pass"
        ),
        pytest.param(streak(Health.UNKNOWN), FAIL, 2, 3, failed(1), id="unknown-1st-fail"),
        pytest.param(
            streak(Health.UNKNOWN, failures=2),
            FAIL,
            2,
            3,
            failed(3, health=Health.UNHEALTHY, reported_load=0),
            id="unknown-fall-reached",
        ),
        # unhealthy: rise passes in a row
        pytest.param(streak(Health.UNHEALTHY), PASS, 2, 3, passed(1), id="unhealthy-1st-pass"),
        pytest.param(
            streak(Health.UNHEALTHY, successes=1),
            PASS,
            2,
            3,
            passed(2, health=Health.HEALTHY),
            id="unhealthy-rise-reached",
        ),
        pytest.param(
            streak(Health.UNHEALTHY, successes=3),
            PASS,
            5,
            3,
            passed(4),
            id="unhealthy-rise-5-not-yet",
        ),
        pytest.param(
            streak(Health.UNHEALTHY, successes=0),
            PASS,
            1,
            3,
            passed(1, health=Health.HEALTHY),
            id="unhealthy-rise-1",
        ),
        pytest.param(
            streak(Health.UNHEALTHY, successes=1),
            FAIL,
            2,
            3,
            failed(1),
            id="unhealthy-fail-resets-rise",
        ),
        pytest.param(
            streak(Health.UNHEALTHY, failures=7),
            FAIL,
            2,
            3,
            failed(8),
            id="unhealthy-stays-unhealthy",
        ),
        # healthy: fall failures in a row
        pytest.param(streak(Health.HEALTHY, successes=4), PASS, 2, 3, passed(5), id="healthy-pass"),
        pytest.param(
            streak(Health.HEALTHY, successes=4), FAIL, 2, 3, failed(1), id="healthy-1st-fail"
        ),
        pytest.param(
            streak(Health.HEALTHY, failures=1), FAIL, 2, 3, failed(2), id="healthy-2nd-fail"
        ),
        pytest.param(
            streak(Health.HEALTHY, failures=2, reported_load=9),
            FAIL,
            2,
            3,
            failed(3, health=Health.UNHEALTHY, reported_load=0),
            id="healthy-fall-reached",
        ),
        pytest.param(
            streak(Health.HEALTHY),
            FAIL,
            2,
            1,
            failed(1, health=Health.UNHEALTHY, reported_load=0),
            id="healthy-fall-1",
        ),
        pytest.param(
            streak(Health.HEALTHY, failures=2), PASS, 2, 3, passed(1), id="healthy-pass-resets-fall"
        ),
        # a 503 is a draining worker: alive, so it passes, and it is marked as draining
        pytest.param(
            streak(Health.HEALTHY),
            DRAINING,
            2,
            3,
            passed(1, worker_draining=True),
            id="healthy-draining",
        ),
        pytest.param(
            streak(Health.UNKNOWN),
            DRAINING,
            2,
            3,
            passed(1, worker_draining=True, health=Health.HEALTHY),
            id="unknown-draining",
        ),
        pytest.param(
            streak(Health.HEALTHY, worker_draining=True),
            PASS,
            2,
            3,
            passed(1),
            id="draining-ends-on-200",
        ),
        pytest.param(
            streak(Health.HEALTHY, failures=2, worker_draining=True),
            DRAINING,
            2,
            3,
            passed(1, worker_draining=True),
            id="draining-resets-fall",
        ),
        # reported load and capacity
        pytest.param(
            streak(Health.HEALTHY),
            CheckResult(ok=True, current_load=4, max_capacity=20),
            2,
            3,
            passed(1, reported_load=4, max_capacity=20, capacity_reported=True),
            id="load-and-capacity",
        ),
        pytest.param(
            streak(Health.HEALTHY),
            CheckResult(ok=True, current_load=-3, max_capacity=0),
            2,
            3,
            passed(1, reported_load=0),
            id="negative-load-zero-capacity-ignored",
        ),
        pytest.param(
            streak(Health.HEALTHY),
            CheckResult(ok=True, current_load=0),
            2,
            3,
            passed(1, reported_load=0),
            id="idle-load-is-read",
        ),
    ],
)
def test_transition(
    before: Instance, result: CheckResult, rise: int, fall: int, expected: dict[str, Any]
) -> None:
    assert transition(before, result, NOW, rise, fall) == expected


def test_transitions_applied_in_sequence_follow_the_thresholds() -> None:
    """Fall 3 then rise 2, the way the checker applies one result after another."""
    current = streak(Health.HEALTHY)
    history = []
    for result in [FAIL, FAIL, PASS, FAIL, FAIL, FAIL, PASS, PASS, FAIL, PASS, PASS]:
        current = dataclasses.replace(current, **transition(current, result, NOW, 2, 3))
        history.append(current.health.value[0])

    # A pass in the middle resets the fall count; one failure after recovering flips nothing.
    assert "".join(history) == "hhhhhuuhhhh"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"current_load": 3, "max_capacity": 8}', CheckResult(True, False, 3, 8)),
        (200, b'{"status": "ok"}', CheckResult(True, False, None, None)),
        (200, b"", CheckResult(True, False, None, None)),
        (200, b"not json", CheckResult(True, False, None, None)),
        (200, b"[1, 2]", CheckResult(True, False, None, None)),
        (200, b"null", CheckResult(True, False, None, None)),
        (200, b'{"current_load": "x", "max_capacity": 4}', CheckResult(True, False, None, None)),
        (200, b'{"current_load": "5"}', CheckResult(True, False, 5, None)),
        (503, b'{"current_load": 2, "max_capacity": 8}', CheckResult(True, True, 2, 8)),
        (503, b"draining", CheckResult(True, True, None, None)),
        (500, b'{"current_load": 1}', CheckResult(False, reason="status 500")),
        (404, b"", CheckResult(False, reason="status 404")),
        (502, b"", CheckResult(False, reason="status 502")),
        (204, b"", CheckResult(False, reason="status 204")),
    ],
)
def test_parse_health(status: int, body: bytes, expected: CheckResult) -> None:
    assert parse_health(status, body) == expected


@pytest.mark.parametrize(
    ("reported_load", "own_work", "expected"),
    [
        pytest.param(0, 0, 0, id="idle"),
        pytest.param(3, 0, 3, id="all-background"),
        pytest.param(3, 3, 0, id="all-the-lbs-own"),
        pytest.param(5, 2, 3, id="some-of-each"),
        # Requests on their way that the worker has not counted yet: no negative runs.
        pytest.param(1, 4, 0, id="requests-not-arrived-yet"),
    ],
)
def test_background_runs_are_the_report_less_the_lbs_own_work(
    reported_load: int, own_work: int, expected: int
) -> None:
    assert background_runs(reported_load, own_work) == expected
