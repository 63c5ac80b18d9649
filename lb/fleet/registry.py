"""The registry of worker instances: copy-on-write snapshots that the proxy reads without locks.

Three facts about an instance are kept apart (as traefik's status/fenced, pingora's
healthy/enabled): its *health* (from active checks), whether it is *draining* (by an operator,
or because the worker itself said so on ``/health``), and whether it is *ejected* (passive
outlier detection). Only an instance that is healthy, not draining and not ejected is
*routable*; the snapshot precomputes that tuple so the hot path does no filtering.

Per-request counters (in-flight requests, the passive error streak) change on every request, so
they do not live in the frozen records: each instance carries one mutable :class:`Load` that
every snapshot of that instance shares.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from yarl import URL

Clock = Callable[[], float]
INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def instance_id_for_url(url: str) -> str:
    """A stable id for an instance known only by its URL: ``127.0.0.1_8001``."""
    parsed = URL(url)
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{parsed.host}_{parsed.port}")[:64]


class Health(enum.StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(slots=True)
class Load:
    """Mutable counters owned by the proxy's hot path; never replaced, only changed in place."""

    inflight: int = 0  # every request being proxied to the instance
    # Of those, the requests that create work (``common.contract.creates_work``): only these
    # take the capacity slots; a join or a status poll never waits for one.
    work: int = 0
    # Runs on the worker that no request of this LB is waiting on: background runs (answered
    # at once, still running) and other LBs' runs. Each health check sets it to the worker's
    # reported load less this LB's own work requests then in flight (so a run is never counted
    # twice, and a stale report does not keep counting runs long finished); a background run
    # this LB starts adds one at once, until the next report corrects it.
    background: int = 0
    consecutive_errors: int = 0


@dataclass(frozen=True, slots=True)
class Instance:
    """One worker as of one snapshot. Replace with :func:`dataclasses.replace`, never mutate."""

    id: str
    url: str
    max_capacity: int
    weight: int = 1
    health: Health = Health.UNKNOWN
    draining: bool = False  # an operator (or the autoscaler) asked for no new work
    worker_draining: bool = False  # the worker answered 503 on its health check
    ejected: bool = False
    ejected_until: float = 0.0
    ejections: int = 0
    reported_load: int = 0
    consecutive_failures: int = 0  # active checks, for the fall threshold
    consecutive_successes: int = 0  # active checks, for the rise threshold
    last_check_at: float | None = None
    static: bool = False  # from LB_INSTANCES: never expires
    # Workers this LB runs itself (the local backend): they die with it, so they are neither
    # kept in the state file nor shared with other LBs.
    local_only: bool = False
    capacity_reported: bool = False  # max_capacity came from the worker's own /health
    registered_at: float = 0.0
    last_seen_at: float = 0.0  # last registration heartbeat or passing check
    drain_started_at: float | None = None
    pending_removal: bool = False  # DELETE asked: leaves once its in-flight work is done
    load: Load = field(default_factory=Load, compare=False, repr=False)

    @property
    def state(self) -> str:
        """The one-word state of the design: unknown, healthy, unhealthy or draining."""
        if self.draining or self.worker_draining:
            return "draining"
        return self.health.value

    @property
    def routable(self) -> bool:
        return (
            self.health is Health.HEALTHY
            and not self.draining
            and not self.worker_draining
            and not self.ejected
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "state": self.state,
            "health": self.health.value,
            "draining": self.draining or self.worker_draining,
            "ejected": self.ejected,
            "inflight": self.load.inflight,
            "reported_load": self.reported_load,
            "max_capacity": self.max_capacity,
            "weight": self.weight,
            "consecutive_failures": self.consecutive_failures,
            "last_check_at": self.last_check_at,
            "static": self.static,
            "local_only": self.local_only,
            "pending_removal": self.pending_removal,
        }

    def to_record(self) -> dict[str, Any]:
        """The membership facts that outlive a process and are shared between LBs."""
        return {
            "id": self.id,
            "url": self.url,
            "max_capacity": self.max_capacity,
            "weight": self.weight,
            "draining": self.draining,
            "pending_removal": self.pending_removal,
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the fleet. ``routable`` keeps the registry's order."""

    version: int
    instances: tuple[Instance, ...]
    by_id: Mapping[str, Instance]
    routable: tuple[Instance, ...]

    @classmethod
    def of(cls, version: int, instances: Iterable[Instance]) -> Snapshot:
        members = tuple(instances)
        return cls(
            version=version,
            instances=members,
            by_id=MappingProxyType({i.id: i for i in members}),
            routable=tuple(i for i in members if i.routable),
        )

    def get(self, instance_id: str) -> Instance | None:
        return self.by_id.get(instance_id)


Listener = Callable[[Snapshot], None]


class Registry:
    """Holds the current :class:`Snapshot`; every change publishes a new one.

    Writers are the health checker, passive ejection, the admin API and the shared-registry
    sync, all on the event loop. ``snapshot`` is a plain attribute read: the proxy never awaits
    anything to route. Listeners run synchronously after each publish (wake queued requests,
    persist, update gauges) and must not raise.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._versions = itertools.count(1)
        self.snapshot: Snapshot = Snapshot.of(0, ())
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _publish(self, instances: Iterable[Instance]) -> Snapshot:
        snapshot = Snapshot.of(next(self._versions), instances)
        self.snapshot = snapshot
        for listener in tuple(self._listeners):
            listener(snapshot)
        return snapshot

    def get(self, instance_id: str) -> Instance | None:
        return self.snapshot.by_id.get(instance_id)

    def add(self, instance: Instance) -> Instance:
        """Add a new instance or replace the one with the same id (keeping its counters)."""
        current = self.snapshot.by_id.get(instance.id)
        if current is not None:
            instance = dataclasses.replace(instance, load=current.load)
            members = [instance if i.id == instance.id else i for i in self.snapshot.instances]
        else:
            members = [*self.snapshot.instances, instance]
        self._publish(members)
        return instance

    def update(self, instance_id: str, **changes: Any) -> Instance | None:
        """Replace fields of one instance; None when it is gone (a removal raced the caller)."""
        current = self.snapshot.by_id.get(instance_id)
        if current is None:
            return None
        updated = dataclasses.replace(current, **changes)
        if updated == current:
            return current  # nothing changed: no new snapshot, no listener churn
        self._publish(updated if i.id == instance_id else i for i in self.snapshot.instances)
        return updated

    def remove(self, instance_id: str) -> Instance | None:
        current = self.snapshot.by_id.get(instance_id)
        if current is None:
            return None
        self._publish(i for i in self.snapshot.instances if i.id != instance_id)
        return current

    def replace_all(self, instances: Iterable[Instance]) -> None:
        """Publish a whole membership at once (state file load, shared-registry sync)."""
        known = self.snapshot.by_id
        self._publish(
            dataclasses.replace(i, load=known[i.id].load) if i.id in known else i for i in instances
        )

    def now(self) -> float:
        return self._clock()
