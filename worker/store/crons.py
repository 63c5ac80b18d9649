"""Cron records and the queries over them; the claim that makes each firing happen once.

A cron is due when it is enabled, its ``next_run_date`` has passed and its ``end_time`` has
not. Firing goes in three steps, each a single conditional statement in the store:

1. ``claim_due_crons``: mark due crons as held by one worker (``claimed_by``) until
   ``claim_expires_at``; a cron already held by a live claim is passed over, so of workers
   ticking at once exactly one gets each cron.
2. the worker creates the run, under an id derived from the cron and its due time
   (``fire_run_id``), so that a claimant that finds that run already on record knows the
   firing happened (its predecessor died after creating it) and does not fire again;
3. ``finish_cron_fire`` advances ``next_run_date`` and drops the claim, only while the claim
   is still this worker's and the due time unchanged; ``release_cron_claim`` drops a claim
   without advancing when the run could not be created (another worker retries it).

A worker killed after step 1 leaves a claim that lapses after ``claim_s``; another worker
then fires the cron. One killed after step 2 leaves the run on record; the next claimant
finds it and only advances. (The one gap: a stateless cron's run is deleted with its thread
when it ends; were it to end, and its worker to die, in the moment between steps 2 and 3,
the firing would happen again.)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

CronSortKey = Literal[
    "cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"
]
CRON_SORT_KEYS: tuple[str, ...] = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "next_run_date",
    "end_time",
    "created_at",
    "updated_at",
)
# Columns ``update_cron`` may set.
CRON_MUTABLE = frozenset(
    {
        "schedule",
        "timezone",
        "end_time",
        "enabled",
        "on_run_completed",
        "payload",
        "metadata",
        "next_run_date",
        "updated_at",
    }
)
_FIRE_NAMESPACE = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


@dataclass(frozen=True, slots=True)
class CronRecord:
    """A cron as persisted. ``payload`` is the run body each firing creates a run from."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    on_run_completed: str | None
    enabled: bool
    end_time: datetime | None
    next_run_date: datetime
    created_at: datetime
    updated_at: datetime
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class CronQuery:
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Mapping[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    sort_by: CronSortKey = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"


def fire_run_id(cron_id: str, due: datetime) -> str:
    """The id of the run a cron creates for its firing at ``due``: the same for every worker."""
    return str(uuid.uuid5(_FIRE_NAMESPACE, f"{cron_id}@{due.timestamp():.6f}"))


def check_changes(changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - CRON_MUTABLE
    if unknown:
        raise ValueError(f"cannot update cron column(s) {sorted(unknown)}")
