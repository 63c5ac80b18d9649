"""Loading rules of langgraph.json: dependencies, env, factory signatures, per-run factories."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

from worker.graph_config import GraphLoadError, apply_config, read_config
from worker.graph_factories import GraphFactory, classify
from worker.graphs import compile_graphs, context_for, load_graph_objects


class State(TypedDict, total=False):
    label: str


def _graph(label: str) -> Any:
    def node(state: State) -> State:
        return {"label": label}

    builder = StateGraph(State)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    return builder.compile()


CONFIG: RunnableConfig = {"configurable": {"model": "m"}}
RUNTIME = _ReadRuntime(access_context="assistants.read", store=None)  # type: ignore[arg-type]


def f0() -> Any: ...
def f_config(config: RunnableConfig) -> Any: ...
def f_untyped(anything) -> Any: ...  # type: ignore[no-untyped-def]
def f_runtime(runtime: ServerRuntime) -> Any: ...
def f_runtime_generic(rt: ServerRuntime[dict[str, str]]) -> Any: ...
def f_runtime_class(rt: _ExecutionRuntime) -> Any: ...  # type: ignore[type-arg]
def f_runtime_annotated(rt: Annotated[ServerRuntime, "x"]) -> Any: ...
def f_runtime_string(rt: "ServerRuntime") -> Any: ...  # noqa: UP037
def f_both(config: RunnableConfig, runtime: ServerRuntime) -> Any: ...
def f_both_reversed(runtime: ServerRuntime, cfg: dict[str, Any]) -> Any: ...
def f_default_counts(config: RunnableConfig, extra: int = 1) -> Any: ...
def f_two_configs(a: RunnableConfig, b: RunnableConfig) -> Any: ...
def f_three(a: Any, b: Any, c: Any) -> Any: ...


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (f0, {}),
        (f_config, {"config": CONFIG}),
        (f_untyped, {"anything": CONFIG}),
        (f_runtime, {"runtime": RUNTIME}),
        (f_runtime_generic, {"rt": RUNTIME}),
        (f_runtime_class, {"rt": RUNTIME}),
        (f_runtime_annotated, {"rt": RUNTIME}),
        (f_runtime_string, {"rt": RUNTIME}),
        (f_both, {"config": CONFIG, "runtime": RUNTIME}),
        (f_both_reversed, {"cfg": CONFIG, "runtime": RUNTIME}),
    ],
)
def test_factories_are_classified_by_arity_and_annotation(
    fn: Callable[..., Any], expected: dict[str, Any]
) -> None:
    assert classify("g", fn)(CONFIG, RUNTIME) == expected


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (f_default_counts, "one ServerRuntime (annotated so) and one RunnableConfig"),
        (f_two_configs, "one ServerRuntime (annotated so) and one RunnableConfig"),
        (f_three, "a factory takes 0, 1 or 2 arguments, got ['a', 'b', 'c']"),
    ],
)
def test_factories_the_server_refuses_are_refused_naming_the_graph(
    fn: Callable[..., Any], reason: str
) -> None:
    with pytest.raises(GraphLoadError) as error:
        classify("agent", fn)
    assert str(error.value).startswith("graph 'agent': ")
    assert reason in str(error.value)


def sync_plain(config: RunnableConfig) -> Any:
    return _graph("sync")


async def async_plain(config: RunnableConfig) -> Any:
    return _graph("async")


exited: list[str] = []


@contextlib.contextmanager
def sync_cm(config: RunnableConfig) -> Iterator[Any]:
    yield _graph("cm")
    exited.append("cm")


@contextlib.asynccontextmanager
async def async_cm(config: RunnableConfig) -> AsyncIterator[Any]:
    yield _graph("acm")
    exited.append("acm")


@pytest.mark.parametrize(
    ("fn", "label"),
    [(sync_plain, "sync"), (async_plain, "async"), (sync_cm, "cm"), (async_cm, "acm")],
)
async def test_a_factory_opens_sync_async_and_context_managers(
    fn: Callable[..., Any], label: str
) -> None:
    exited.clear()
    async with GraphFactory.of("g", fn).open(CONFIG, RUNTIME) as graph:
        assert await graph.ainvoke({}) == {"label": label}
        assert exited == []  # a context manager stays open while the graph is used
    assert exited == ([label] if label in ("cm", "acm") else [])


async def test_a_factory_is_called_at_start_then_once_per_run_with_the_runs_config() -> None:
    calls: list[tuple[str, Any]] = []

    def factory(config: RunnableConfig, runtime: ServerRuntime) -> Any:
        context = getattr(runtime, "context", "-")
        calls.append((runtime.access_context, (config.get("configurable") or {}).get("n")))
        return _graph(f"n={(config.get('configurable') or {}).get('n')} context={context}")

    registry = await compile_graphs({"g": GraphFactory.of("g", factory)}, InMemorySaver())
    entry = registry.get("g")
    assert entry is not None
    assert calls == [("assistants.read", None)]
    for n in (1, 2):
        config: RunnableConfig = {"configurable": {"thread_id": f"t{n}", "n": n}}
        async with entry.for_run(config, context_for(None)) as graph:
            assert graph.checkpointer is entry.graph.checkpointer
            assert await graph.ainvoke({}, config) == {"label": f"n={n} context={{}}"}
    assert calls[1:] == [("threads.create_run", 1), ("threads.create_run", 2)]


async def test_a_factory_that_fails_or_returns_no_graph_fails_at_start() -> None:
    def failing() -> Any:
        raise RuntimeError("no database")

    with pytest.raises(GraphLoadError, match="graph 'bad': factory raised RuntimeError: no data"):
        await compile_graphs({"bad": GraphFactory.of("bad", failing)}, InMemorySaver())
    with pytest.raises(GraphLoadError, match="graph 'bad': expected a compiled graph"):
        await compile_graphs({"bad": GraphFactory.of("bad", lambda: 42)}, InMemorySaver())


@dataclass
class Defaults:
    greeting: str = "hello"


async def test_a_run_without_context_gets_the_context_schemas_defaults() -> None:
    def greet(state: State, runtime: Runtime[Defaults]) -> State:
        return {"label": runtime.context.greeting}

    builder = StateGraph(State, context_schema=Defaults)
    builder.add_node("greet", greet)
    builder.add_edge(START, "greet")
    graph = builder.compile()
    assert context_for(None) == {}
    assert context_for({"greeting": "hey"}) == {"greeting": "hey"}
    assert await graph.ainvoke({}, context=context_for(None)) == {"label": "hello"}


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(doc))
    return path


GRAPH_IN_PACKAGE = """
from langgraph.graph import START, StateGraph
from typing import TypedDict
import os

class State(TypedDict, total=False):
    value: str

def node(state: State) -> State:
    return {"value": os.environ["LOADING_TEST_VALUE"]}

builder = StateGraph(State)
builder.add_node("node", node)
builder.add_edge(START, "node")
graph = builder.compile()
"""


async def test_dependencies_make_a_package_importable_and_env_is_loaded_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "src" / "loading_test_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "agent.py").write_text(GRAPH_IN_PACKAGE)
    (tmp_path / ".env").write_text("# comment\nLOADING_TEST_VALUE='from .env'\nexport KEPT=new\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("KEPT", "operator")
    monkeypatch.delenv("LOADING_TEST_VALUE", raising=False)
    doc = {
        "dependencies": ["./src", "langchain-openai"],
        "env": ".env",
        "graphs": {"agent": "loading_test_pkg.agent:graph"},
    }
    objects = load_graph_objects(_write(tmp_path, doc))
    assert str(tmp_path / "src") in sys.path
    assert os.environ["KEPT"] == "operator"  # a variable already set is never overridden
    registry = await compile_graphs(objects, InMemorySaver())
    entry = registry.get("agent")
    assert entry is not None
    result = await entry.graph.ainvoke({}, {"configurable": {"thread_id": "t"}})
    assert result == {"value": "from .env"}


def test_env_as_a_mapping_and_idempotent_application(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("LOADING_TEST_MAPPED", raising=False)
    (tmp_path / "deps").mkdir()
    config = read_config(
        _write(
            tmp_path,
            {"dependencies": ["./deps"], "env": {"LOADING_TEST_MAPPED": 3}, "graphs": {"g": "m:g"}},
        )
    )
    apply_config(config)
    apply_config(config)
    assert os.environ["LOADING_TEST_MAPPED"] == "3"
    assert sys.path.count(str(tmp_path / "deps")) == 1


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"dependencies": "./src"}, '"dependencies" must be a list of strings'),
        ({"dependencies": ["./missing"]}, 'dependency "./missing" is not a directory'),
        ({"env": ".env.missing"}, 'env file ".env.missing" not found'),
        ({"env": ["A=1"]}, '"env" must be a .env file path or a mapping'),
        ({"env": {"A": {"nested": 1}}}, '"env" must map names to strings'),
    ],
)
def test_bad_dependencies_and_env_fail_at_start(
    tmp_path: Path, doc: dict[str, Any], reason: str
) -> None:
    with pytest.raises(GraphLoadError, match=reason):
        read_config(_write(tmp_path, {**doc, "graphs": {"g": "m:g"}}))
