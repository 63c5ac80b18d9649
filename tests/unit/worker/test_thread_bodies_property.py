"""Properties of what parses client input in the thread and run extras: bodies either parse
or are refused with a 422 (never another error), JSON containment is reflexive, and any
Last-Event-ID either names a place in a thread stream or is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from worker.api.schemas import ThreadCreateBody, parse
from worker.api.thread_context import contains
from worker.api.thread_schemas import (
    HistoryBody,
    RunsCancelBody,
    StateAtCheckpointBody,
    ThreadCountBody,
    ThreadPatchBody,
    ThreadPruneBody,
)
from worker.errors import Unprocessable
from worker.runs.thread_follow import Cursor
from worker.store.thread_ttl import MAX_TTL_MINUTES

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "limit",
        "before",
        "metadata",
        "checkpoint",
        "status",
        "thread_id",
        "run_ids",
        "thread_ids",
        "strategy",
        "values",
        "ttl",
        "strategy",
        "default_ttl",
        "subgraphs",
        "x",
    ]
)
BODIES = st.dictionaries(KEYS, JSON, max_size=5) | JSON
MODELS = [
    ThreadCreateBody,
    HistoryBody,
    RunsCancelBody,
    StateAtCheckpointBody,
    ThreadCountBody,
    ThreadPatchBody,
    ThreadPruneBody,
]


@pytest.mark.parametrize("model", MODELS)
@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(body=BODIES)
def test_a_body_parses_or_is_refused_with_422(model: Any, body: Any) -> None:
    outcome: Any
    try:
        outcome = parse(model, body)
    except Unprocessable as refused:
        outcome = refused
    if not isinstance(outcome, model):
        assert outcome.status == 422
        assert outcome.message


TTLS = st.dictionaries(
    st.sampled_from(["ttl", "default_ttl", "strategy", "x"]),
    JSON | st.floats() | st.sampled_from(["delete", "keep_latest"]),
    max_size=3,
)


@pytest.mark.parametrize("model", [ThreadCreateBody, ThreadPatchBody])
@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(ttl=TTLS)
def test_a_ttl_parses_to_one_the_store_can_keep_or_is_refused(model: Any, ttl: Any) -> None:
    outcome: Any
    try:
        outcome = parse(model, {"ttl": ttl})
    except Unprocessable as refused:
        outcome = refused
    if isinstance(outcome, Unprocessable):
        assert outcome.status == 422
        return
    kept = outcome.ttl.thread_ttl()
    assert kept is None or -float("inf") < kept.minutes <= MAX_TTL_MINUTES


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(value=JSON)
def test_containment_is_reflexive(value: Any) -> None:
    assert contains(value, value)
    if isinstance(value, dict):
        assert contains(value, {})


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(text=st.text(max_size=60))
def test_any_last_event_id_is_a_cursor_or_ignored(text: str) -> None:
    cursor = Cursor.parse(text)
    assert cursor is None or (cursor.run_id + ":") in text
