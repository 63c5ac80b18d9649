"""SSE framing, status maps and JSON encoding: pure functions."""

from __future__ import annotations

import pytest
from langgraph.types import Interrupt

from worker import jsonutil
from worker.api.sse import frame, parse_last_event_id, wanted
from worker.runs.events import StreamEvent
from worker.runs.model import api_status, simple_status


def test_sse_frame_is_what_the_sdk_parses() -> None:
    assert frame("values", b'{"a":1}', "7") == b'event: values\r\ndata: {"a":1}\r\nid: 7\r\n\r\n'
    assert frame("metadata", b"{}") == b"event: metadata\r\ndata: {}\r\n\r\n"


@pytest.mark.parametrize(("raw", "seq"), [(None, -1), ("", -1), ("12", 12), ("abc", -1)])
def test_last_event_id(raw: str | None, seq: int) -> None:
    assert parse_last_event_id(raw) == seq


@pytest.mark.parametrize(
    ("name", "modes", "passes"),
    [
        ("updates", None, True),
        ("updates", {"values"}, False),
        ("updates|child:1", {"updates"}, True),
        ("messages/partial", {"messages"}, True),
        ("error", {"values"}, True),
    ],
)
def test_join_stream_mode_filter(name: str, modes: set[str] | None, passes: bool) -> None:
    assert wanted(StreamEvent(0, name, b"{}"), modes) is passes


@pytest.mark.parametrize(
    ("state", "api", "simple"),
    [
        ("pending", "pending", "running"),
        ("success", "success", "completed"),
        ("error", "error", "failed"),
        ("timeout", "timeout", "failed"),
        ("interrupted", "interrupted", "interrupted"),
        ("cancelled", "interrupted", "cancelled"),
        ("paused", "interrupted", "paused"),
    ],
)
def test_status_maps(state: str, api: str, simple: str) -> None:
    assert api_status(state) == api  # type: ignore[arg-type]
    assert simple_status(state) == simple  # type: ignore[arg-type]


def test_json_handles_graph_objects() -> None:
    encoded = jsonutil.to_jsonable({"i": (Interrupt(value={"q": 1}, id="x"),), "s": {1}})
    assert encoded == {"i": [{"value": {"q": 1}, "id": "x"}], "s": [1]}
