"""Thread operations that need no server: JSON containment (search by values) and the
checkpoint copy and prune every store uses."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from worker.api.thread_context import contains
from worker.store.checkpoint_ops import copy_checkpoints, keep_latest


@pytest.mark.parametrize(
    ("document", "wanted", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True),
        ({"a": [1, 2, 3]}, {"a": [3, 1]}, True),
        ({"a": [1, 2]}, {"a": [4]}, False),
        ({"a": [{"role": "user", "content": "hi"}]}, {"a": [{"role": "user"}]}, True),
        ({"a": 1}, {}, True),
        (None, {}, False),
        ([], {"a": 1}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": None}, {"a": None}, True),
    ],
)
def test_contains_is_jsonb_containment(document: Any, wanted: Any, expected: bool) -> None:
    assert contains(document, wanted) is expected


class State(TypedDict, total=False):
    question: str
    answer: str


def _graph(saver: InMemorySaver) -> Any:
    def ask(state: State) -> State:
        return {"answer": str(interrupt(state.get("question", "")))}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    return builder.compile(checkpointer=saver)


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


async def test_a_copy_has_the_same_history_and_pending_interrupt() -> None:
    saver = InMemorySaver()
    graph = _graph(saver)
    await graph.ainvoke({"question": "ok?"}, _config("src"))
    copied = await copy_checkpoints(saver, "src", "dst")
    source, copy = await graph.aget_state(_config("src")), await graph.aget_state(_config("dst"))
    assert copied == len([s async for s in graph.aget_state_history(_config("src"))]) > 1
    assert copy.values == source.values == {"question": "ok?"}
    assert copy.next == ("ask",)
    assert [i.value for i in copy.interrupts] == ["ok?"]
    # The copy resumes on its own; the source stays where it was.
    assert await graph.ainvoke(Command(resume="yes"), _config("dst")) == {
        "question": "ok?",
        "answer": "yes",
    }
    assert (await graph.aget_state(_config("src"))).next == ("ask",)


async def test_keep_latest_leaves_one_checkpoint_and_the_same_state() -> None:
    saver = InMemorySaver()
    graph = _graph(saver)
    await graph.ainvoke({"question": "q"}, _config("t"))
    before = await graph.aget_state(_config("t"))
    await keep_latest(saver, "t")
    history = [s async for s in graph.aget_state_history(_config("t"))]
    after = await graph.aget_state(_config("t"))
    assert len(history) == 1
    assert after.values == before.values
    assert after.next == before.next
    assert [i.value for i in after.interrupts] == ["q"]
