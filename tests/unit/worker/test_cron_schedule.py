"""Cron schedules: what is valid, and the next firing time in a cron's timezone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.crons.schedule import check_schedule, check_timezone, next_run_after
from worker.errors import Unprocessable
from worker.store.crons import fire_run_id


@pytest.mark.parametrize(
    ("schedule", "after", "timezone", "expected"),
    [
        (
            "*/5 * * * *",
            datetime(2026, 1, 1, 12, 3, tzinfo=UTC),
            None,
            datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
        ),
        # Strictly after: a time on the schedule gives the next one.
        (
            "*/5 * * * *",
            datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
            None,
            datetime(2026, 1, 1, 12, 10, tzinfo=UTC),
        ),
        (
            "0 9 * * *",
            datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
            None,
            datetime(2026, 1, 2, 9, 0, tzinfo=UTC),
        ),
        # 9 am in New York: 14:00 UTC in winter, 13:00 UTC in summer.
        (
            "0 9 * * *",
            datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 1, 1, 14, 0, tzinfo=UTC),
        ),
        (
            "0 9 * * *",
            datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 7, 1, 13, 0, tzinfo=UTC),
        ),
        # A sixth field is seconds.
        (
            "* * * * * 30",
            datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
            None,
            datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC),
        ),
    ],
)
def test_next_run_after(
    schedule: str, after: datetime, timezone: str | None, expected: datetime
) -> None:
    result = next_run_after(schedule, after, timezone)
    assert result == expected
    assert result.tzinfo is not None
    assert result.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize(
    "schedule", ["* * * * *", "0 0 1 1 *", "*/15 9-17 * * 1-5", "0 0 * * * 10"]
)
def test_valid_schedules_pass(schedule: str) -> None:
    assert check_schedule(schedule) == schedule


@pytest.mark.parametrize("schedule", ["", "bad", "* * *", "61 * * * *", "* * * * * * * *"])
def test_invalid_schedules_are_422(schedule: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_schedule(schedule)
    assert caught.value.status == 422
    assert f"Invalid cron schedule: '{schedule}'" in caught.value.message


@pytest.mark.parametrize(
    ("timezone", "valid"),
    [
        (None, True),
        ("UTC", True),
        ("Europe/Paris", True),
        ("Mars/Base", False),
        ("", False),
        ("../etc", False),
    ],
)
def test_timezones(timezone: str | None, valid: bool) -> None:
    if valid:
        assert check_timezone(timezone) == timezone
    else:
        with pytest.raises(Unprocessable):
            check_timezone(timezone)


def test_a_firing_has_one_run_id_for_every_worker() -> None:
    due = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert fire_run_id("c1", due) == fire_run_id("c1", due)
    assert fire_run_id("c1", due) != fire_run_id("c2", due)
    assert fire_run_id("c1", due) != fire_run_id("c1", datetime(2026, 1, 1, 12, 1, tzinfo=UTC))
