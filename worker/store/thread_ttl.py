"""Thread TTLs: what a thread's time-to-live is, when it runs out, and langgraph.json's default.

A thread with a TTL expires ``minutes`` after its last activity, as on the official server
(whose TTL clock restarts with each new run or checkpoint): setting the TTL (thread create,
patch) arms it, and every later write to the thread's record re-arms it (a run starting or
ending on it, a metadata patch, a state update). The sweeper (``worker.ttl``) then acts on
the expired thread by its ``strategy``:

- ``delete``: the thread goes, with its runs (active ones cancelled first), crons and
  checkpoints;
- ``keep_latest``: every checkpoint but the latest of each namespace is pruned and the thread
  stays; its expiry is disarmed until the next activity re-arms it.

The claim that makes each expired thread swept once in a fleet, each step one conditional
statement in the store:

1. ``claim_expired_threads`` marks expired threads as held by one worker (``ttl_claimed_by``)
   until ``ttl_claim_expires_at``; a thread under a live claim is passed over, so of workers
   sweeping at once exactly one gets each thread. A ``keep_latest`` thread with a run in
   progress is not claimed: the run's end re-arms its expiry. While claimed, activity does
   not re-arm the expiry (the thread is being swept).
2. the holder acts: ``delete_thread(..., ttl_holder=worker)`` deletes only while the claim is
   still its own; ``finish_thread_ttl`` disarms a pruned thread's expiry and drops the claim.
3. ``release_thread_ttl_claim`` drops a claim after a failure: the thread is expired still,
   so the next sweep (of any worker) tries again.

A worker killed after step 1 leaves a claim that lapses after the claim time; another worker
then sweeps the thread (deleting and pruning are both safe to repeat).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

TTLStrategy = Literal["delete", "keep_latest"]
TTL_STRATEGIES: tuple[TTLStrategy, ...] = ("delete", "keep_latest")
# Longer TTLs are kept as this: an expiry past it would overflow dates (and Postgres
# intervals), and a thread kept a century is kept for good.
MAX_TTL_MINUTES = 100 * 365 * 24 * 60.0
DEFAULT_SWEEP_LIMIT = 1000


class TTLConfigError(ValueError):
    """``checkpointer.ttl`` of langgraph.json is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class ThreadTTL:
    """A thread's TTL: what happens (``strategy``) once ``minutes`` pass without activity."""

    strategy: TTLStrategy
    minutes: float

    @classmethod
    def of(cls, strategy: TTLStrategy, minutes: float) -> ThreadTTL:
        """The TTL as stored: ``minutes`` finite, at most ``MAX_TTL_MINUTES`` (a negative one
        has run out already)."""
        if not math.isfinite(minutes):
            raise ValueError(f"a TTL must be a finite number of minutes, not {minutes!r}")
        return cls(strategy, min(float(minutes), MAX_TTL_MINUTES))

    def expiry(self, now: datetime) -> datetime:
        """When a thread active at ``now`` expires."""
        return now + timedelta(minutes=self.minutes)


@dataclass(frozen=True, slots=True)
class TTLConfig:
    """``checkpointer.ttl`` of a langgraph.json, as the official server reads it.

    ``default``: the TTL of threads created without one (``strategy`` and ``default_ttl``);
    ``sweep_interval_s`` (from ``sweep_interval_minutes``) how often to sweep, None when not
    given; ``sweep_limit`` the most threads one sweep handles.
    """

    default: ThreadTTL | None = None
    sweep_interval_s: float | None = None
    sweep_limit: int = DEFAULT_SWEEP_LIMIT


def _number(path: Path, section: dict[str, Any], key: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TTLConfigError(f'{path}: "checkpointer.ttl.{key}" must be a number')
    return float(value)


def parse_ttl_config(path: Path, section: Any) -> TTLConfig:
    """``section`` (the value of ``checkpointer.ttl`` in the file at ``path``) read."""
    if section is None:
        return TTLConfig()
    if not isinstance(section, dict):
        raise TTLConfigError(f'{path}: "checkpointer.ttl" must be an object')
    strategy = section.get("strategy", "delete")
    if strategy not in TTL_STRATEGIES:
        raise TTLConfigError(
            f'{path}: "checkpointer.ttl.strategy" must be one of {", ".join(TTL_STRATEGIES)}'
        )
    default_ttl = _number(path, section, "default_ttl")
    interval_min = _number(path, section, "sweep_interval_minutes")
    if interval_min is not None and interval_min <= 0:
        raise TTLConfigError(f'{path}: "checkpointer.ttl.sweep_interval_minutes" must be > 0')
    limit = _number(path, section, "sweep_limit")
    if limit is not None and (limit < 1 or limit != int(limit)):
        raise TTLConfigError(f'{path}: "checkpointer.ttl.sweep_limit" must be an integer >= 1')
    return TTLConfig(
        default=ThreadTTL.of(strategy, default_ttl) if default_ttl is not None else None,
        sweep_interval_s=interval_min * 60 if interval_min is not None else None,
        sweep_limit=int(limit) if limit is not None else DEFAULT_SWEEP_LIMIT,
    )


def read_ttl_config(config_path: Path) -> TTLConfig:
    """``checkpointer.ttl`` of the langgraph.json at ``config_path`` (empty when absent;
    a file that cannot be read is reported by the graph loader, not here)."""
    try:
        doc = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return TTLConfig()
    checkpointer = doc.get("checkpointer") if isinstance(doc, dict) else None
    if checkpointer is None:
        return TTLConfig()
    if not isinstance(checkpointer, dict):
        raise TTLConfigError(f'{config_path}: "checkpointer" must be an object')
    return parse_ttl_config(config_path, checkpointer.get("ttl"))
