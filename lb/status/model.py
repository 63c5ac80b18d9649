"""The status document: one JSON object that the page renders and ``graphfleet ctl`` reads.

Built on demand from the registry's current snapshot and the sampler's history; it holds no
state of its own. Times are wall-clock seconds (``*_at``) or ages (``*_age_s``); latencies
are milliseconds (``*_ms``); ratios are 0..1 or ``null`` when nothing was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lb.fleet.registry import Instance
from lb.status.history import Window
from lb.status.sampler import Sampler

RUNS_WINDOW_S = 300.0


def state_label(instance: Instance) -> str:
    """The one word the page shows: a draining instance is ``draining`` whatever its health,
    an ejected one ``ejected``; otherwise its health (``healthy``, ``unhealthy``,
    ``unknown``)."""
    if instance.draining or instance.worker_draining:
        return "draining"
    if instance.ejected:
        return "ejected"
    return instance.health.value


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _rates(window: Window) -> dict[str, Any]:
    return {
        "requests_per_s": None
        if window.requests_per_s is None
        else round(window.requests_per_s, 3),
        "error_ratio": None if window.error_ratio is None else round(window.error_ratio, 4),
        "p50_ms": _ms(window.p50_s),
        "p99_ms": _ms(window.p99_s),
    }


def instance_view(instance: Instance, sampler: Sampler, now: float) -> dict[str, Any]:
    runs = sampler.runs.get(instance.id)
    return {
        "id": instance.id,
        "url": instance.url,
        "state": state_label(instance),
        "health": instance.health.value,
        "draining": instance.draining or instance.worker_draining,
        "ejected": instance.ejected,
        "pending_removal": instance.pending_removal,
        "inflight": instance.load.inflight,
        "reported_load": instance.reported_load,
        "max_capacity": instance.max_capacity,
        "weight": instance.weight,
        **_rates(sampler.window(instance.id)),
        "last_check_age_s": None
        if instance.last_check_at is None
        else round(max(0.0, now - instance.last_check_at), 3),
        "ejections": instance.ejections,
        "runs": None if runs is None else {"running": runs.running, "queued": runs.queued},
    }


def autoscaler_view(described: dict[str, Any] | None) -> dict[str, Any] | None:
    if described is None:
        return None
    config = described.get("config", {})
    last = described.get("last_decision") or {}
    return {
        "backend": described.get("backend"),
        "min": config.get("min_instances"),
        "max": config.get("max_instances"),
        "mode": config.get("mode"),
        "paused": bool(config.get("paused", False)),
        "current": last.get("current"),
        "desired": last.get("desired"),
        "draining": described.get("draining", []),
        "last_error": described.get("last_error"),
        # Newest first; each stamped by the autoscaler when it decided.
        "decisions": list(reversed(described.get("recent_decisions", []))),
    }


def status_document(
    *,
    instances: Sequence[Instance],
    now: float,
    wall_now: float,
    strategy: str,
    strategies: Sequence[str],
    autoscaler: dict[str, Any] | None,
    sampler: Sampler,
) -> dict[str, Any]:
    """The whole page's data. ``now`` is the registry's clock (ages of health checks),
    ``wall_now`` the wall clock (the charts' time axis)."""
    views = [instance_view(i, sampler, now) for i in instances]
    reported = [v["runs"] for v in views if v["runs"] is not None]
    return {
        "generated_at": round(wall_now, 3),
        "strategy": strategy,
        "strategies": list(strategies),
        "window_s": sampler.window_s,
        "instances": views,
        "autoscaler": autoscaler_view(autoscaler),
        "runs": {
            "window_s": RUNS_WINDOW_S,
            "running": sum(r["running"] for r in reported),
            "queued": sum(r["queued"] for r in reported),
            "ended": sampler.runs_ended(wall_now - RUNS_WINDOW_S),
            # Outcomes are counted from when the status was first read (workers are polled
            # only while someone watches): null until then.
            "counted_since": None if sampler.runs_since is None else round(sampler.runs_since, 3),
        },
        "history": {
            "interval_s": sampler.interval_s,
            "points": [
                {
                    "at": round(p.at, 3),
                    **_rates(p.window),
                    "instances": p.instances,
                    "routable": p.routable,
                    "desired": p.desired,
                }
                for p in sampler.points
            ],
        },
    }
