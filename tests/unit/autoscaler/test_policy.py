"""The autoscaling policy, table by table, with a fake clock (plain numbers)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from lb.autoscaler.policy import (
    Observation,
    PolicyConfig,
    PolicyState,
    bound,
    decide,
    limit_step,
    raw_target,
    stabilize,
    utilization,
)

NO_WINDOWS = PolicyConfig(up_window_s=0, down_window_s=0)


def obs(
    current: int = 2,
    healthy: int | None = None,
    inflight: int = 0,
    reported: int = 0,
    capacity: int | None = None,
    queued: int = 0,
    now: float = 1000.0,
) -> Observation:
    healthy = current if healthy is None else healthy
    return Observation(
        now=now,
        current=current,
        healthy=healthy,
        inflight=inflight,
        reported_load=reported,
        capacity=10 * healthy if capacity is None else capacity,
        queued=queued,
    )


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        (obs(inflight=0), 0.0),
        (obs(inflight=10), 0.5),
        (obs(inflight=5, reported=5), 0.5),
        (obs(inflight=10, queued=20), 1.5),  # waiting requests count as demand
        (obs(capacity=0), 0.0),
        (obs(capacity=0, queued=1), math.inf),
    ],
)
def test_utilization(observation: Observation, expected: float) -> None:
    assert utilization(observation) == expected


@pytest.mark.parametrize(
    ("config", "observation", "expected"),
    [
        # threshold mode: the original deployment notes' 80 % / 20 %
        (PolicyConfig(), obs(current=3, inflight=25), 4),  # 83 %
        (PolicyConfig(), obs(current=3, inflight=24), 3),  # 80 %: not above
        (PolicyConfig(), obs(current=3, inflight=6), 3),  # 20 %: not below
        (PolicyConfig(), obs(current=3, inflight=5), 2),  # 17 %
        (PolicyConfig(), obs(current=3, healthy=0), 3),  # nothing to measure: hold
        (PolicyConfig(), obs(current=0, healthy=0), 2),  # nothing runs: the minimum
        # target mode: ceil(healthy * u / target), 10 % tolerance
        (PolicyConfig(mode="target"), obs(current=4, inflight=24), 4),  # 60 %: on target
        (PolicyConfig(mode="target"), obs(current=4, inflight=26), 4),  # 65 %: within 10 %
        (PolicyConfig(mode="target"), obs(current=4, inflight=40), 7),  # 100 %: ceil(6.67)
        (PolicyConfig(mode="target"), obs(current=4, inflight=4), 1),  # 10 %: ceil(0.67)
        (PolicyConfig(mode="target"), obs(current=5, healthy=4, inflight=40), 7),
    ],
)
def test_raw_target(config: PolicyConfig, observation: Observation, expected: int) -> None:
    desired, reason = raw_target(observation, utilization(observation), config)
    assert desired == expected
    assert reason


@pytest.mark.parametrize(
    ("desired", "current", "expected"),
    [(10, 2, 6), (5, 2, 5), (2, 2, 2), (0, 5, 4), (4, 5, 4)],
)
def test_limit_step(desired: int, current: int, expected: int) -> None:
    assert limit_step(desired, current, PolicyConfig(max_step_up=4, max_step_down=1)) == expected


@pytest.mark.parametrize(("desired", "expected"), [(0, 2), (2, 2), (7, 7), (10, 10), (11, 10)])
def test_bound(desired: int, expected: int) -> None:
    assert bound(desired, PolicyConfig(min_instances=2, max_instances=10)) == expected


def test_scale_up_needs_the_whole_up_window() -> None:
    config = PolicyConfig(up_window_s=15, down_window_s=300)
    # A spike: the window still holds older, lower recommendations.
    state = PolicyState(history=((90.0, 3), (95.0, 3)), since=0.0)
    assert stabilize(5, 3, 100.0, state, config)[0] == 3
    # Wanted for the whole window: granted as far as every recommendation agrees.
    state = PolicyState(history=((80.0, 3), (86.0, 5), (90.0, 4), (95.0, 5)), since=0.0)
    assert stabilize(5, 3, 100.0, state, config)[0] == 4
    state = PolicyState(history=((80.0, 3), (86.0, 5), (92.0, 5), (96.0, 5)), since=0.0)
    assert stabilize(5, 3, 100.0, state, config)[0] == 5


def test_scale_down_takes_the_highest_recommendation_of_the_down_window() -> None:
    config = PolicyConfig(up_window_s=15, down_window_s=300)
    history = ((0.0, 6), (100.0, 4), (200.0, 3), (290.0, 2))
    desired, _ = stabilize(2, 6, 299.0, PolicyState(history, since=-100.0), config)
    assert desired == 6  # the 6 at t=0 is still in the window
    desired, _ = stabilize(2, 6, 301.0, PolicyState(history, since=-100.0), config)
    assert desired == 4


def test_a_fresh_lb_does_not_scale_down_before_watching_a_whole_window() -> None:
    config = PolicyConfig(up_window_s=15, down_window_s=300)
    state = PolicyState()
    for t in range(0, 300, 5):
        desired, state = stabilize(1, 4, float(t), state, config)
        assert desired == 4
    desired, state = stabilize(1, 4, 300.0, state, config)
    assert desired == 1
    # Ticks every 5 s keep the history bounded by the longest window.
    assert len(state.history) <= 300 // 5 + 1


def test_steady_load_near_a_threshold_never_flaps() -> None:
    """Load moving around 80 %: one step up at most, never up and down again."""
    config = PolicyConfig(up_window_s=15, down_window_s=300)
    state = PolicyState()
    current = 4
    actions = []
    for step in range(600):  # 50 minutes, every 5 s
        t = step * 5.0
        inflight = 31 if step % 2 else 33  # 77 % / 82 % of 40, then of more capacity
        decision = decide(obs(current=current, inflight=inflight, now=t), state, config)
        state = decision.state
        if decision.desired != current:
            actions.append((t, current, decision.desired))
            current = decision.desired
    assert len(actions) <= 1
    assert all(new > old for _, old, new in actions)


def test_pause_holds_the_fleet() -> None:
    decision = decide(obs(current=3, inflight=100), PolicyState(), replace(NO_WINDOWS, paused=True))
    assert (decision.desired, decision.reason, decision.action) == (3, "paused", "hold")


@pytest.mark.parametrize(
    ("observation", "action", "desired"),
    [
        (obs(current=2, inflight=19), "scale_up", 3),
        (obs(current=10, inflight=100), "hold", 10),  # at max
        (obs(current=2, inflight=0), "hold", 2),  # at min
        (obs(current=5, inflight=2), "scale_down", 4),
        (obs(current=12, inflight=50), "scale_down", 10),  # above max after a config change
    ],
)
def test_decide_without_windows(observation: Observation, action: str, desired: int) -> None:
    decision = decide(observation, PolicyState(), NO_WINDOWS)
    assert (decision.action, decision.desired) == (action, desired)
    assert decision.current == observation.current
