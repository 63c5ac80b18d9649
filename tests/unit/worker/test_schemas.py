from __future__ import annotations

from typing import Any

import pytest

from worker.api.schemas import (
    ExecuteBody,
    RunCreateBody,
    ThreadCreateBody,
    ThreadSearchBody,
    parse,
)
from worker.api.thread_schemas import (
    HistoryBody,
    RunsCancelBody,
    ThreadPatchBody,
    ThreadPruneBody,
)
from worker.errors import Unprocessable
from worker.store.thread_ttl import ThreadTTL


def test_stream_mode_accepts_one_or_many() -> None:
    assert parse(RunCreateBody, {"assistant_id": "a", "stream_mode": "updates"}).stream_mode == [
        "updates"
    ]
    body = parse(RunCreateBody, {"assistant_id": "a"})
    assert body.stream_mode == ["values"]
    assert body.multitask_strategy == "enqueue"


@pytest.mark.parametrize(
    ("model", "data", "code", "needle"),
    [
        (RunCreateBody, {"assistant_id": "a", "bogus": 1}, "unsupported_field", "bogus"),
        (
            RunCreateBody,
            {"assistant_id": "a", "command": {"x": 1}},
            "unsupported_field",
            "command.x",
        ),
        (
            RunCreateBody,
            {"assistant_id": "a", "strict_resume": True},
            "unsupported_field",
            "strict_resume",
        ),
        (RunCreateBody, {"assistant_id": "a", "stream_mode": ["nope"]}, "invalid_request", "nope"),
        (
            RunCreateBody,
            {"assistant_id": "a", "multitask_strategy": "x"},
            "invalid_request",
            "multitask_strategy",
        ),
        (RunCreateBody, {}, "invalid_request", "assistant_id"),
        (ThreadSearchBody, {"extract": {"a": "values.a"}}, "unsupported_field", "extract"),
        (ThreadSearchBody, {"select": ["nope"]}, "invalid_request", "select"),
        (ThreadCreateBody, {"ttl": {"ttl": 5, "bogus": 1}}, "unsupported_field", "ttl.bogus"),
        (ThreadCreateBody, {"ttl": {"strategy": "archive"}}, "invalid_request", "ttl.strategy"),
        (ThreadCreateBody, {"ttl": {"ttl": "5"}}, "invalid_request", "ttl.ttl"),
        (ThreadCreateBody, {"ttl": None}, "invalid_request", "ttl"),
        (ThreadPatchBody, {"ttl": 5}, "invalid_request", "ttl"),
        (RunsCancelBody, {"status": "all", "thread_id": "t"}, "invalid_request", "either"),
        (RunsCancelBody, {"thread_id": "t"}, "invalid_request", "either"),
        (ThreadPruneBody, {"thread_ids": [], "strategy": "x"}, "invalid_request", "strategy"),
        (HistoryBody, {"limit": 0}, "invalid_request", "limit"),
        (
            ExecuteBody,
            {"graph_id": "g", "execution_options": {"retries": 2}},
            "unsupported_field",
            "execution_options.retries",
        ),
    ],
)
def test_refusals_name_the_field(model: Any, data: Any, code: str, needle: str) -> None:
    with pytest.raises(Unprocessable) as error:
        parse(model, data)
    assert error.value.code == code
    assert needle in error.value.message


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        ({"ttl": 5}, ThreadTTL("delete", 5.0)),
        ({"ttl": 0.5, "strategy": "keep_latest"}, ThreadTTL("keep_latest", 0.5)),
        ({"default_ttl": 2}, ThreadTTL("delete", 2.0)),
        ({"strategy": "keep_latest"}, None),
        ({}, None),
    ],
)
def test_a_thread_ttl_is_read_as_the_sdk_sends_it(ttl: Any, expected: ThreadTTL | None) -> None:
    for model in (ThreadCreateBody, ThreadPatchBody):
        body = parse(model, {"ttl": ttl})
        assert body.ttl is not None
        assert body.ttl.thread_ttl() == expected


def test_langsmith_fields_are_accepted() -> None:
    body = parse(
        RunCreateBody,
        {"assistant_id": "a", "feedback_keys": ["k"], "langsmith_tracer": {"project_name": "p"}},
    )
    assert body.feedback_keys == ["k"]


def test_history_before_is_an_id_or_a_checkpoint() -> None:
    assert parse(HistoryBody, {"before": "c1"}).before == "c1"
    before = parse(HistoryBody, {"before": {"checkpoint_id": "c1"}}).before
    assert not isinstance(before, str)
    assert before is not None
    assert before.checkpoint_id == "c1"
    assert parse(HistoryBody, {}).limit == 1


def test_empty_refused_fields_are_fine() -> None:
    body = parse(RunCreateBody, {"assistant_id": "a", "feedback_keys": [], "strict_resume": False})
    assert body.feedback_keys == []


@pytest.mark.parametrize(
    ("durability", "checkpoint_during", "expected"),
    [(None, None, None), ("sync", None, "sync"), (None, True, "async"), (None, False, "exit")],
)
def test_durability(durability: Any, checkpoint_during: Any, expected: Any) -> None:
    body = parse(
        RunCreateBody,
        {"assistant_id": "a", "durability": durability, "checkpoint_during": checkpoint_during},
    )
    assert body.durability_mode() == expected
