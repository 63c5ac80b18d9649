"""Membership operations: register, drain, enable, remove, and the loop that finishes them.

The admin API, the state file and the shared (Redis) registry all change membership through
:class:`Membership`, so the rules live in one place:

- registering is idempotent by id: a worker re-registering is a heartbeat and may update its
  capacity or weight, but never undoes a drain (only ``enable`` does);
- a removal drains first and completes when the instance's in-flight work reaches zero or
  after ``drain_timeout_s``;
- registered (not static) instances that stop heartbeating *and* fail their health checks for
  ``instance_ttl_s`` are removed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import structlog

from lb.fleet.registry import Health, Instance, Registry, instance_id_for_url
from lb.settings import LBSettings

log = structlog.get_logger("lb.fleet.control")

MembershipListener = Callable[[], None]


class Conflict(Exception):
    """The id is taken by another URL, or the URL by another id."""


class Membership:
    def __init__(self, registry: Registry, settings: LBSettings) -> None:
        self._registry = registry
        self._settings = settings
        self._listeners: list[MembershipListener] = []
        self._removal_listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: MembershipListener) -> None:
        """Called after every membership change (not health changes): persist, share."""
        self._listeners.append(listener)

    def on_removal(self, listener: Callable[[str], None]) -> None:
        """Called with the id of every instance that leaves (drop its metrics, affinity)."""
        self._removal_listeners.append(listener)

    def _changed(self) -> None:
        for listener in tuple(self._listeners):
            listener()

    def register(
        self,
        url: str,
        instance_id: str | None,
        max_capacity: int | None,
        weight: int | None,
        *,
        local_only: bool = False,
    ) -> tuple[Instance, bool]:
        """Add or refresh an instance; returns it and whether it is new."""
        snapshot = self._registry.snapshot
        now = self._registry.now()
        by_url = next((i for i in snapshot.instances if i.url == url), None)
        if instance_id is None:
            instance_id = by_url.id if by_url is not None else instance_id_for_url(url)
        current = snapshot.get(instance_id)
        if current is not None and current.url != url:
            raise Conflict(f"instance {instance_id!r} is registered with another url")
        if current is None and by_url is not None:
            raise Conflict(f"url {url!r} is registered as instance {by_url.id!r}")
        if current is None:
            instance = Instance(
                id=instance_id,
                url=url,
                max_capacity=max_capacity or self._settings.default_max_capacity,
                weight=weight or 1,
                registered_at=now,
                last_seen_at=now,
                local_only=local_only,
            )
            self._registry.add(instance)
            log.info("instance_registered", instance_id=instance_id, url=url)
            self._changed()
            return instance, True
        changes: dict[str, Any] = {"last_seen_at": now}
        if max_capacity is not None:
            changes["max_capacity"] = max_capacity
        if weight is not None:
            changes["weight"] = weight
        membership_changed = any(
            getattr(current, k) != v for k, v in changes.items() if k != "last_seen_at"
        )
        updated = self._registry.update(instance_id, **changes) or current
        if membership_changed:
            self._changed()
        return updated, False

    def drain(self, instance_id: str) -> Instance | None:
        current = self._registry.get(instance_id)
        if current is None:
            return None
        if current.draining:
            return current
        updated = self._registry.update(
            instance_id, draining=True, drain_started_at=self._registry.now()
        )
        log.info("instance_draining", instance_id=instance_id, inflight=current.load.inflight)
        self._changed()
        return updated

    def enable(self, instance_id: str) -> Instance | None:
        current = self._registry.get(instance_id)
        if current is None:
            return None
        if not current.draining and not current.pending_removal:
            return current
        updated = self._registry.update(
            instance_id, draining=False, pending_removal=False, drain_started_at=None
        )
        log.info("instance_enabled", instance_id=instance_id)
        self._changed()
        return updated

    def remove(self, instance_id: str) -> Instance | None:
        """Drain, and remove once idle (see :meth:`sweep`)."""
        current = self._registry.get(instance_id)
        if current is None:
            return None
        updated = self._registry.update(
            instance_id,
            draining=True,
            pending_removal=True,
            drain_started_at=current.drain_started_at or self._registry.now(),
        )
        self._changed()
        self.sweep()
        return updated

    def forget(self, instance_id: str) -> None:
        """Remove at once (the drain is over, or the shared registry says it is gone)."""
        if self._registry.remove(instance_id) is not None:
            log.info("instance_removed", instance_id=instance_id)
            for listener in tuple(self._removal_listeners):
                listener(instance_id)
            self._changed()

    def apply_records(self, records: list[dict[str, Any]]) -> None:
        """Make the registered membership equal to ``records`` (state file, shared registry),
        keeping each known instance's health and counters, and the static and local-only
        instances, which records never hold."""
        now = self._registry.now()
        snapshot = self._registry.snapshot
        wanted = {r["id"]: r for r in records}
        members: list[Instance] = []
        for instance in snapshot.instances:
            record = wanted.pop(instance.id, None)
            if record is None:
                if instance.static or instance.local_only:
                    members.append(instance)
                continue
            members.append(
                dataclasses.replace(
                    instance,
                    url=record["url"],
                    max_capacity=instance.max_capacity
                    if instance.capacity_reported
                    else record["max_capacity"],
                    weight=record["weight"],
                    draining=record["draining"],
                    pending_removal=record["pending_removal"],
                    drain_started_at=instance.drain_started_at
                    or (now if record["draining"] else None),
                )
            )
        for record in wanted.values():
            members.append(
                Instance(
                    id=record["id"],
                    url=record["url"],
                    max_capacity=record["max_capacity"],
                    weight=record["weight"],
                    draining=record["draining"],
                    pending_removal=record["pending_removal"],
                    drain_started_at=now if record["draining"] else None,
                    registered_at=now,
                    last_seen_at=now,
                )
            )
        if [i.to_record() for i in members] != [i.to_record() for i in snapshot.instances]:
            kept = {i.id for i in members}
            self._registry.replace_all(members)
            for gone in [i.id for i in snapshot.instances if i.id not in kept]:
                for listener in tuple(self._removal_listeners):
                    listener(gone)

    def records(self) -> list[dict[str, Any]]:
        return [
            i.to_record()
            for i in self._registry.snapshot.instances
            if not i.static and not i.local_only
        ]

    def sweep(self) -> None:
        """Finish drains that are done or timed out; expire silent, failing instances."""
        now = self._registry.now()
        ttl = self._settings.instance_ttl_s
        for instance in self._registry.snapshot.instances:
            if instance.pending_removal:
                started = instance.drain_started_at or now
                idle = instance.load.inflight == 0
                if idle or now - started >= self._settings.drain_timeout_s:
                    log.info(
                        "instance_drained",
                        instance_id=instance.id,
                        inflight=instance.load.inflight,
                        timed_out=not idle,
                    )
                    self.forget(instance.id)
            elif (
                ttl
                and not instance.static
                and instance.health is not Health.HEALTHY
                and now - instance.last_seen_at > ttl
            ):
                log.warning("instance_expired", instance_id=instance.id, ttl_s=ttl)
                self.forget(instance.id)

    async def run_sweeper(self, interval_s: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.sweep()
