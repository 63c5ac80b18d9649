"""The contract between the autoscaler loop and a scaling backend.

The loop decides *how many*; a backend knows *how*. Scaling down is two-phase and the loop owns
the first phase: it picks the victims (the least loaded instances the backend owns), drains
them through the registry, waits until their work is done or the drain timeout passes, and only
then calls :meth:`ScalingBackend.scale_down`. A backend that cannot pick which worker goes (a
Kubernetes Deployment) is told the victims early through :meth:`prefer_victims`, so it can steer
the platform (``controller.kubernetes.io/pod-deletion-cost``).

Every method may raise :class:`BackendError` (API down, quota, image missing): the loop logs it,
backs off and tries again; it never stops the load balancer.
"""

from __future__ import annotations

from typing import Protocol

from lb.fleet.registry import Instance


class BackendError(Exception):
    """The backend could not do what was asked; the loop retries later."""


class ScalingBackend(Protocol):
    name: str

    async def start(self) -> None:
        """Connect, discover what already runs (and register it with the LB)."""

    async def current(self) -> int:
        """Workers the backend runs or is starting now (the autoscaler's ``current``)."""

    def owns(self, instance: Instance) -> bool:
        """Whether this registered instance is one of the backend's workers."""

    async def scale_up(self, count: int) -> None:
        """Start ``count`` more workers; they join the registry when healthy."""

    async def prefer_victims(self, victims: list[Instance]) -> None:
        """Called before the victims are drained; a no-op where the backend stops them itself."""

    async def scale_down(self, victims: list[Instance]) -> None:
        """Stop these (already drained) workers and remove them from the registry."""

    async def close(self) -> None:
        """Release connections; the local backend also stops every worker it started."""
