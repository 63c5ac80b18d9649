"""Reading a worker's run counters from its Prometheus text: the bytes are hostile."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.status.scrape import (
    MAX_OUTCOMES,
    WorkerRuns,
    ended_between,
    parse_worker_metrics,
)

REAL = b"""# HELP graphfleet_worker_runs_total Runs that ended, by graph and outcome.
# TYPE graphfleet_worker_runs_total counter
graphfleet_worker_runs_total{graph_id="echo",outcome="success"} 7.0
graphfleet_worker_runs_total{graph_id="chat",outcome="success"} 3.0
graphfleet_worker_runs_total{graph_id="chat",outcome="error"} 1.0
# TYPE graphfleet_worker_runs_in_progress gauge
graphfleet_worker_runs_in_progress 2.0
graphfleet_worker_runs_queued 5.0
graphfleet_worker_run_duration_seconds_bucket{graph_id="echo",le="0.05"} 1.0
"""


def test_a_real_exposition() -> None:
    assert parse_worker_metrics(REAL) == WorkerRuns(
        running=2, queued=5, ended={"success": 10.0, "error": 1.0}
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"graphfleet_worker_runs_in_progress",
        b"graphfleet_worker_runs_in_progress NaN",
        b"graphfleet_worker_runs_in_progress +Inf",
        b"graphfleet_worker_runs_in_progress -3",
        b"graphfleet_worker_runs_in_progress 1e400",
        b"graphfleet_worker_runs_queued{ 2",
        b'graphfleet_worker_runs_total{outcome="success" 3',
        b'graphfleet_worker_runs_total{outcome="<script>"} 3',
        b"graphfleet_worker_runs_total}{ 3",
        b'graphfleet_worker_runs_total{outcome="a"} -1',
        b"graphfleet_worker_runs_in_progress 1\r\ngraphfleet_worker_runs_queued nan",
    ],
)
def test_broken_lines_are_skipped(body: bytes) -> None:
    runs = parse_worker_metrics(body)
    assert runs.running >= 0
    assert runs.queued >= 0
    assert all(name.isidentifier() and "<" not in name for name in runs.ended)


def test_odd_outcome_names_are_other_and_outcomes_are_bounded() -> None:
    lines = [
        f'graphfleet_worker_runs_total{{outcome="o{chr(97 + i % 26) * (i + 1)}"}} 1'
        for i in range(40)
    ]
    lines.append('graphfleet_worker_runs_total{outcome="Bad Name"} 2')
    runs = parse_worker_metrics("\n".join(lines).encode())
    assert len(runs.ended) == MAX_OUTCOMES


def test_a_huge_value_is_clamped() -> None:
    assert parse_worker_metrics(b"graphfleet_worker_runs_queued 1e300").queued == 10**9


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.builds(
                lambda name, labels, value: f"{name}{labels} {value}".encode(),
                st.sampled_from(
                    [
                        "graphfleet_worker_runs_total",
                        "graphfleet_worker_runs_in_progress",
                        "graphfleet_worker_runs_queued",
                        "graphfleet_worker_runs_",
                    ]
                ),
                st.text(max_size=30),
                st.one_of(st.floats(allow_nan=True), st.text(max_size=8)),
            ),
        ),
        max_size=30,
    )
)
def test_any_bytes_give_finite_non_negative_bounded_counts(lines: list[bytes]) -> None:
    runs = parse_worker_metrics(b"\n".join(lines))
    assert 0 <= runs.running <= 10**9
    assert 0 <= runs.queued <= 10**9
    assert len(runs.ended) <= MAX_OUTCOMES
    assert all(math.isfinite(v) and v >= 0 for v in runs.ended.values())


@pytest.mark.parametrize(
    ("older", "newer", "expected"),
    [
        (None, {"success": 5.0}, {}),  # the first read is a baseline
        ({"success": 5.0}, {"success": 7.0, "error": 1.0}, {"success": 2, "error": 1}),
        ({"success": 9.0}, {"success": 2.0}, {"success": 2}),  # the worker restarted
        ({"success": 5.0}, {"success": 5.0}, {}),
    ],
)
def test_ended_between(
    older: dict[str, float] | None, newer: dict[str, float], expected: dict[str, int]
) -> None:
    before = None if older is None else WorkerRuns(ended=older)
    assert ended_between(before, WorkerRuns(ended=newer)) == expected
