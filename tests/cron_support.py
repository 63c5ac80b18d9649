"""Helpers for cron tests: a schedule that falls due once, at a chosen second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def once_at(when: datetime) -> str:
    """A schedule (with seconds, as croniter reads a sixth field) due at ``when`` (UTC) and
    next a year later: a test sees exactly one firing."""
    when = when.astimezone(UTC)
    return f"{when.minute} {when.hour} {when.day} {when.month} * {when.second}"


def soon(seconds: float) -> datetime:
    """A whole UTC second at least ``seconds`` from now."""
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.replace(microsecond=0) + timedelta(seconds=1)
