"""The autoscaling policy: ``decide(observation, state, config) -> Decision``, pure.

Composed of small steps, each table-tested:

1. :func:`utilization` — (LB in-flight + reported background runs + queued requests) over the
   capacity of the healthy instances;
2. :func:`raw_target` — ``threshold`` mode (one step up above ``scale_up_at``, one down below
   ``scale_down_at``) or ``target`` mode (Kubernetes HPA: ``ceil(current * u / target)``,
   ignored within ``tolerance``);
3. :func:`stabilize` — a scale-up must be wanted for the whole short up-window (a spike does
   not buy instances), a scale-down for the whole long down-window (the highest
   recommendation in the window wins, as the HPA does), so a load steady near a threshold
   never flaps;
4. :func:`limit_step` and :func:`bound` — at most so many instances per decision, always
   within min and max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Mode = Literal["threshold", "target"]


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    current: int  # instances the backend runs now (starting ones included)
    healthy: int  # of those, healthy and taking work
    inflight: int  # the LB's requests in flight to healthy instances
    reported_load: int  # background runs the healthy workers report
    capacity: int  # the healthy instances' max_capacity, summed
    queued: int  # requests waiting at the LB for capacity


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    mode: Mode = "threshold"
    min_instances: int = 2
    max_instances: int = 10
    scale_up_at: float = 0.8
    scale_down_at: float = 0.2
    target_utilization: float = 0.6
    tolerance: float = 0.1
    up_window_s: float = 15.0
    down_window_s: float = 300.0
    max_step_up: int = 4
    max_step_down: int = 1
    paused: bool = False


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Recent raw recommendations, newest last: ``(time, instances)``, and when watching
    began (no window is trusted before it has been watched whole)."""

    history: tuple[tuple[float, int], ...] = ()
    since: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    current: int
    desired: int
    utilization: float
    reason: str
    state: PolicyState

    @property
    def action(self) -> str:
        if self.desired > self.current:
            return "scale_up"
        if self.desired < self.current:
            return "scale_down"
        return "hold"


def utilization(obs: Observation) -> float:
    demand = obs.inflight + obs.reported_load + obs.queued
    if obs.capacity <= 0:
        return math.inf if demand else 0.0
    return demand / obs.capacity


def raw_target(obs: Observation, u: float, config: PolicyConfig) -> tuple[int, str]:
    current = obs.current
    if obs.healthy == 0:
        # Nothing healthy to measure: keep what runs, or start the minimum.
        return max(current, config.min_instances), "no healthy instance"
    if config.mode == "threshold":
        if u > config.scale_up_at:
            return current + 1, f"utilization {u:.0%} above {config.scale_up_at:.0%}"
        if u < config.scale_down_at:
            return current - 1, f"utilization {u:.0%} below {config.scale_down_at:.0%}"
        return current, f"utilization {u:.0%} within thresholds"
    ratio = u / config.target_utilization if config.target_utilization > 0 else math.inf
    if abs(ratio - 1.0) <= config.tolerance:
        return current, f"utilization {u:.0%} within tolerance of {config.target_utilization:.0%}"
    if math.isinf(ratio):
        return config.max_instances, "demand with no capacity"
    # Scale by the healthy instances actually measured, as the HPA scales by ready pods.
    desired = math.ceil(obs.healthy * ratio)
    return desired, f"utilization {u:.0%} against target {config.target_utilization:.0%}"


def stabilize(
    raw: int, current: int, now: float, state: PolicyState, config: PolicyConfig
) -> tuple[int, PolicyState]:
    since = now if state.since is None else state.since
    horizon = now - max(config.up_window_s, config.down_window_s)
    history = (*(h for h in state.history if h[0] >= horizon), (now, raw))
    new_state = PolicyState(history=history, since=since)
    if raw > current:
        if now - since < config.up_window_s:
            return current, new_state  # not watched for a whole window yet
        # Up only as far as every recommendation of the up-window agrees.
        window = [n for t, n in history if t >= now - config.up_window_s]
        return max(current, min(window)), new_state
    if raw < current:
        if now - since < config.down_window_s:
            return current, new_state
        # Down only to the highest recommendation of the down-window.
        window = [n for t, n in history if t >= now - config.down_window_s]
        return min(current, max(window)), new_state
    return current, new_state


def limit_step(desired: int, current: int, config: PolicyConfig) -> int:
    if desired > current:
        return min(desired, current + config.max_step_up)
    if desired < current:
        return max(desired, current - config.max_step_down)
    return desired


def bound(desired: int, config: PolicyConfig) -> int:
    return max(config.min_instances, min(config.max_instances, desired))


def decide(obs: Observation, state: PolicyState, config: PolicyConfig) -> Decision:
    u = utilization(obs)
    if config.paused:
        return Decision(obs.current, obs.current, u, "paused", state)
    raw, reason = raw_target(obs, u, config)
    stable, state = stabilize(raw, obs.current, obs.now, state, config)
    if stable != raw and stable == obs.current and raw != obs.current:
        reason += "; waiting for the stabilization window"
    desired = bound(limit_step(stable, obs.current, config), config)
    if desired != limit_step(stable, obs.current, config):
        reason += f"; bounded to [{config.min_instances}, {config.max_instances}]"
    return Decision(obs.current, desired, u, reason, state)
