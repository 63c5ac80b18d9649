from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from worker.graphs import (
    GraphLoadError,
    assistant_id_for,
    compile_graphs,
    load_graph_objects,
    read_specs,
)

GRAPH_SOURCE = """
from typing import TypedDict
from langgraph.graph import START, StateGraph

class State(TypedDict):
    n: int

def bump(state: State) -> State:
    return {"n": state["n"] + 1}

builder = StateGraph(State)
builder.add_node("bump", bump)
builder.add_edge(START, "bump")

uncompiled = builder
compiled = builder.compile()

def factory():
    return builder

def factory_with_config(config):
    return builder.compile()

def failing_factory():
    raise RuntimeError("no database")

not_a_graph = 42
"""


def _config(tmp_path: Path, graphs: dict[str, str]) -> Path:
    (tmp_path / "my_graphs.py").write_text(GRAPH_SOURCE)
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": graphs}))
    return path


def test_assistant_id_is_langgraphs_uuid5() -> None:
    namespace = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
    assert assistant_id_for("agent") == str(uuid.uuid5(namespace, "agent"))


@pytest.mark.parametrize("attr", ["uncompiled", "compiled", "factory", "factory_with_config"])
async def test_graph_kinds_compile_with_the_worker_checkpointer(tmp_path: Path, attr: str) -> None:
    objects = load_graph_objects(_config(tmp_path, {"g": f"./my_graphs.py:{attr}"}))
    saver = InMemorySaver()
    registry = await compile_graphs(objects, saver)
    entry = registry.get("g")
    assert entry is not None
    assert registry.get(assistant_id_for("g")) is entry
    assert entry.graph.checkpointer is saver
    config = {"configurable": {"thread_id": "t"}}
    assert await entry.graph.ainvoke({"n": 1}, config) == {"n": 2}


def test_module_spec(tmp_path: Path) -> None:
    objects = load_graph_objects(_config(tmp_path, {"pipeline": "worker.examples.pipeline:graph"}))
    assert list(objects) == ["pipeline"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("./my_graphs.py:not_a_graph", "graph 'bad': expected a compiled graph"),
        ("./my_graphs.py:missing", "graph 'bad': './my_graphs.py' has no attribute 'missing'"),
        ("./nowhere.py:graph", "graph 'bad': file "),
        ("no_such_module_xyz:graph", "graph 'bad': importing 'no_such_module_xyz' failed"),
        ("no-colon", "graph 'bad': spec 'no-colon' is not"),
    ],
)
def test_bad_specs_name_the_graph_and_the_reason(tmp_path: Path, spec: str, reason: str) -> None:
    with pytest.raises(GraphLoadError) as error:
        load_graph_objects(_config(tmp_path, {"bad": spec}))
    assert reason in str(error.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(GraphLoadError, match="file not found"):
        read_specs(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(GraphLoadError, match="cannot read JSON"):
        read_specs(broken)
    empty = tmp_path / "empty.json"
    empty.write_text('{"graphs": {}}')
    with pytest.raises(GraphLoadError, match='no "graphs" object'):
        read_specs(empty)
