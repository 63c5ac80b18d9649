"""Cron schedules: validation and the next firing time, as the LangGraph Server computes them.

A schedule is standard cron syntax (``minute hour day_of_month month day_of_week``), with an
optional sixth field for seconds, read by ``croniter`` like the official server does. The
next time is computed in the cron's IANA ``timezone`` (UTC when none) and returned in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from worker.errors import Unprocessable


def check_schedule(schedule: str) -> str:
    """``schedule`` when croniter accepts it; 422 with the official server's wording if not."""
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise Unprocessable(
            f"Invalid cron schedule: '{schedule}'. Reason: Invalid cron schedule. Ensure the "
            "schedule uses the standard cron format (minute hour day_of_month month "
            "day_of_week). Example: '*/5 * * * *' for every 5 minutes.",
            code="invalid_schedule",
        )
    return schedule


def check_timezone(timezone: str | None) -> str | None:
    """``timezone`` when it names an IANA zone (or is None); 422 otherwise."""
    if timezone is None:
        return None
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        raise Unprocessable(
            f"Invalid timezone: '{timezone}'. Use IANA timezone format (e.g. 'America/New_York').",
            code="invalid_timezone",
        ) from None
    return timezone


def next_run_after(schedule: str, after: datetime, timezone: str | None = None) -> datetime:
    """The first time strictly after ``after`` that ``schedule`` names, in UTC.

    ``after`` must be timezone-aware. Read in ``timezone`` so that "0 9 * * *" means 9 am
    local time across daylight-saving changes.
    """
    base = after.astimezone(ZoneInfo(timezone)) if timezone else after.astimezone(UTC)
    following: datetime = croniter(schedule, base).get_next(datetime)
    return following.astimezone(UTC)
