"""Small fakes shared by the load balancer's unit tests."""

from __future__ import annotations

from typing import Any

from lb.fleet.registry import Health, Instance


class FakeClock:
    """A settable clock, passed wherever the code takes a ``Clock`` callable."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def instance(
    instance_id: str,
    *,
    max_capacity: int = 10,
    weight: int = 1,
    inflight: int = 0,
    work: int | None = None,
    health: Health = Health.HEALTHY,
    **fields: Any,
) -> Instance:
    """A healthy instance (unless told otherwise) with ``inflight`` requests counted, all of
    them creating work unless ``work`` says how many do."""
    made = Instance(
        id=instance_id,
        url=f"http://{instance_id}.test:8000",
        max_capacity=max_capacity,
        weight=weight,
        health=health,
        **fields,
    )
    made.load.inflight = inflight
    made.load.work = inflight if work is None else work
    return made
