from __future__ import annotations

from typing import Any

import pytest

from worker.api.schemas import ExecuteBody, RunCreateBody, ThreadSearchBody, parse
from worker.errors import Unprocessable


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
            {"assistant_id": "a", "feedback_keys": ["k"]},
            "unsupported_field",
            "feedback_keys",
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
        (ThreadSearchBody, {"values": {"a": 1}}, "unsupported_field", "values"),
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
