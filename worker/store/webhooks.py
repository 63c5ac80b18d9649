"""Webhook records and the store interface for hooks, the outbox and delivery attempts.

The outbox: a run's status change writes its ``WebhookEvent``s in the same transaction
(``Store.set_run_status(..., events=...)``), and with each event one *delivery* row per
target (every enabled hook subscribed to the event type, plus the event's own ``targets``:
hooks fixed by configuration, a run's own ``webhook``). Deliveries are claimed with a lease
like runs: whichever worker is alive sends them, and one whose holder died is claimed again
once its lease expires (at-least-once; receivers de-duplicate by the event id).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DeliveryStatus = Literal["pending", "delivered", "failed"]
# Who a delivery goes to: a registered hook (``hook``), a hook fixed by configuration
# (``config``, WORKER_WEBHOOK_URLS) or a run's own ``webhook`` URL (``run``).
TargetKind = Literal["hook", "config", "run"]


@dataclass(frozen=True, slots=True)
class Target:
    """A delivery target that is not a registered hook: a URL and what it is."""

    kind: TargetKind
    url: str


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event for the outbox: ``data`` is what receivers get, as of the change."""

    event_id: str
    event_type: str
    run_id: str | None
    data: dict[str, Any]
    created_at: datetime
    # Registered hooks subscribed to ``event_type`` get it too, unless ``hook_only`` names
    # the one hook that should (a test event).
    targets: tuple[Target, ...] = ()
    to_hooks: bool = True
    hook_only: str | None = None


@dataclass(frozen=True, slots=True)
class HookRecord:
    """A registered hook. ``secret`` is never shown after creation (the API drops it)."""

    hook_id: str
    url: str
    events: list[str]
    headers: dict[str, str]
    secret: str
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed delivery: enough to send it without reading anything else."""

    delivery_id: str
    event_id: str
    event_type: str
    kind: TargetKind
    hook_id: str | None
    url: str
    data: dict[str, Any]
    event_created_at: datetime
    attempts: int
    headers: dict[str, str] = field(default_factory=dict)
    secret: str | None = None

    @property
    def target_key(self) -> str:
        """One key per receiver, for per-hook concurrency limits."""
        return self.hook_id or f"{self.kind}:{self.url}"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one attempt went; ``retry_in_s`` None means no retry (delivered or failed).

    A delay, not a time: the store adds it to its own clock, so workers never compare theirs.
    """

    delivery_id: str
    status: DeliveryStatus
    status_code: int | None
    duration_s: float
    error: str | None
    retry_in_s: float | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: str
    event_id: str
    event_type: str
    attempt: int
    status: DeliveryStatus
    status_code: int | None
    duration_s: float
    error: str | None
    next_attempt_at: datetime | None
    attempted_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_pending_at: datetime | None


class WebhookStore(abc.ABC):
    """Hooks, deliveries and attempts, in the same database as the runs.

    ``deliveries_written`` counts the deliveries this process's writes put in the outbox
    (with run changes or ``add_events``): a dispatcher woken by a run's change looks at the
    outbox only when it grew, not after every run.
    """

    deliveries_written: int = 0

    @abc.abstractmethod
    async def create_hook(self, hook: HookRecord) -> None: ...

    @abc.abstractmethod
    async def get_hook(self, hook_id: str) -> HookRecord | None: ...

    @abc.abstractmethod
    async def list_hooks(self) -> list[HookRecord]: ...

    @abc.abstractmethod
    async def update_hook(self, hook_id: str, changes: Mapping[str, Any]) -> HookRecord | None:
        """Set ``changes`` (url, events, headers, description, enabled); re-enabling clears
        ``disabled_reason`` and ``failing_since``. None when the hook does not exist."""

    @abc.abstractmethod
    async def delete_hook(self, hook_id: str) -> bool:
        """Delete the hook; its pending deliveries are dropped."""

    @abc.abstractmethod
    async def add_events(self, events: Sequence[WebhookEvent]) -> None:
        """Write ``events`` and their deliveries in one transaction of their own."""

    @abc.abstractmethod
    async def claim_deliveries(
        self, worker_id: str, *, limit: int, lease_s: float, exclude_targets: Sequence[str]
    ) -> list[Delivery]:
        """Take up to ``limit`` due pending deliveries whose lease is free or expired, oldest
        first, none for ``exclude_targets`` (``Delivery.target_key``); each claim counts as an
        attempt, so a delivery whose senders keep dying still runs out of attempts."""

    @abc.abstractmethod
    async def finish_attempt(
        self, worker_id: str, result: AttemptResult, *, disable_after_s: float
    ) -> str | None:
        """Record ``result`` (if ``worker_id`` still holds the delivery) and update the hook's
        health: a hook failing for longer than ``disable_after_s`` (> 0) is disabled.
        Returns the reason when this call disabled the hook."""

    @abc.abstractmethod
    async def list_attempts(self, hook_id: str, *, limit: int) -> list[AttemptRecord]:
        """The hook's most recent attempts, newest first."""

    @abc.abstractmethod
    async def prune(self, older_than_s: float) -> int:
        """Delete deliveries that ended more than ``older_than_s`` ago, and events left with
        no delivery; returns how many deliveries went. Pending ones are never touched."""

    @abc.abstractmethod
    async def outbox_stats(self) -> OutboxStats:
        """How many deliveries are pending, and since when the oldest one."""
