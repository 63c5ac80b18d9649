"""The pure rules of assistants: config and context kept as one, patches, versions, the run
merge, metadata containment, and the error body of each API (no sockets)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from worker.api.assistant_graphs import parse_xray
from worker.api.assistant_views import (
    AssistantCountBody,
    AssistantCreateBody,
    AssistantPatchBody,
    AssistantSearchBody,
    AssistantVersionBody,
    AssistantVersionsBody,
)
from worker.api.errors import error_body, is_simple_api
from worker.api.schemas import Body, parse
from worker.errors import BadRequest, Unprocessable
from worker.graphs import GraphEntry
from worker.runs.assistants import (
    ResolvedAssistant,
    apply_assistant,
    context_for_graph,
    merge_run_config,
)
from worker.runs.model import RunSpec
from worker.store.assistants import (
    ConfigContextConflict,
    apply_patch,
    metadata_contains,
    new_assistant,
    restore_version,
    sync_config_context,
    version_of,
)
from worker.store.base import AssistantPatch

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("config", "context", "expected"),
    [
        (None, None, ({}, None)),
        ({}, {}, ({}, {})),
        ({"tags": ["a"]}, None, ({"tags": ["a"]}, None)),
        ({"configurable": {"m": 1}}, None, ({"configurable": {"m": 1}}, {"m": 1})),
        (None, {"m": 1}, ({"configurable": {"m": 1}}, {"m": 1})),
        ({"tags": ["a"]}, {"m": 1}, ({"tags": ["a"], "configurable": {"m": 1}}, {"m": 1})),
        ({"configurable": {}}, {"m": 1}, ({"configurable": {"m": 1}}, {"m": 1})),
    ],
)
def test_sync_config_context(
    config: dict[str, Any] | None,
    context: dict[str, Any] | None,
    expected: tuple[dict[str, Any], dict[str, Any] | None],
) -> None:
    assert sync_config_context(config, context) == expected


def test_config_and_context_together_conflict() -> None:
    with pytest.raises(ConfigContextConflict):
        sync_config_context({"configurable": {"m": 1}}, {"m": 2})


def test_new_assistant_defaults() -> None:
    made = new_assistant(assistant_id="a", graph_id="g", now=T0)
    assert (made.name, made.config, made.context, made.metadata) == ("Untitled", {}, {}, {})
    assert (made.version, made.created_at, made.updated_at) == (1, T0, T0)


BASE = new_assistant(
    assistant_id="a",
    graph_id="g",
    now=T0,
    config={"tags": ["t"]},
    context={"m": 1},
    metadata={"k": 1},
    name="n",
    description="d",
)


@pytest.mark.parametrize(
    ("patch", "fields"),
    [
        (AssistantPatch(), {"config": BASE.config, "context": {"m": 1}, "name": "n"}),
        (AssistantPatch(metadata={"j": 2}), {"metadata": {"k": 1, "j": 2}}),
        (AssistantPatch(metadata={"k": 3}), {"metadata": {"k": 3}}),
        # A new context replaces the config with one whose configurable is that context.
        (
            AssistantPatch(context={"m": 2}),
            {"config": {"configurable": {"m": 2}}, "context": {"m": 2}},
        ),
        (AssistantPatch(config={}), {"config": BASE.config}),
        (
            AssistantPatch(config={"recursion_limit": 5}),
            {"config": {"recursion_limit": 5}, "context": {"m": 1}},
        ),
        (
            AssistantPatch(name="x", description="y", graph_id="h"),
            {"name": "x", "description": "y", "graph_id": "h"},
        ),
    ],
)
def test_apply_patch(patch: AssistantPatch, fields: dict[str, Any]) -> None:
    patched = apply_patch(BASE, patch, version=2, now=T1)
    assert (patched.version, patched.created_at, patched.updated_at) == (2, T0, T1)
    for name, value in fields.items():
        assert getattr(patched, name) == value, name


def test_restore_version_brings_the_whole_version_back() -> None:
    v1 = version_of(BASE)
    v2 = apply_patch(
        BASE, AssistantPatch(context={"m": 9}, name="x", graph_id="h"), version=2, now=T1
    )
    back = restore_version(v2, v1, now=T1)
    assert (back.version, back.graph_id, back.context, back.name) == (1, "g", {"m": 1}, "n")
    assert (back.created_at, back.updated_at) == (T0, T1)


@pytest.mark.parametrize(
    ("metadata", "subset", "contained"),
    [
        ({"a": 1}, {}, True),
        ({"a": 1, "b": 2}, {"a": 1}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, True),
        ({"a": {"x": 1}}, {"a": {"x": 2}}, False),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
        ({"a": None}, {"a": None}, True),
    ],
)
def test_metadata_contains(
    metadata: dict[str, Any], subset: dict[str, Any], contained: bool
) -> None:
    assert metadata_contains(metadata, subset) is contained


ASSISTANT = new_assistant(
    assistant_id="a",
    graph_id="g",
    now=T0,
    config={"tags": ["assistant"], "recursion_limit": 7},
    context={"model": "a", "temperature": 0},
)


@pytest.mark.parametrize(
    ("config", "context", "merged_config", "merged_context"),
    [
        (
            None,
            None,
            {
                "tags": ["assistant"],
                "recursion_limit": 7,
                "configurable": {"model": "a", "temperature": 0},
            },
            {"model": "a", "temperature": 0},
        ),
        (
            {"tags": ["run"]},
            {"temperature": 1},
            {
                "tags": ["run"],
                "recursion_limit": 7,
                "configurable": {"model": "a", "temperature": 1},
            },
            {"model": "a", "temperature": 1},
        ),
        (
            {"configurable": {"model": "b"}},
            None,
            {
                "tags": ["assistant"],
                "recursion_limit": 7,
                "configurable": {"model": "b", "temperature": 0},
            },
            {"model": "a", "temperature": 0} | {"model": "b"},
        ),
    ],
)
def test_merge_run_config(
    config: dict[str, Any] | None,
    context: dict[str, Any] | None,
    merged_config: dict[str, Any],
    merged_context: dict[str, Any],
) -> None:
    assert merge_run_config(ASSISTANT, config, context) == (merged_config, merged_context)


def test_merge_refuses_configurable_and_context_together() -> None:
    with pytest.raises(BadRequest):
        merge_run_config(ASSISTANT, {"configurable": {"m": 1}}, {"m": 2})


def test_merge_passes_a_context_that_is_not_an_object() -> None:
    _, context = merge_run_config(ASSISTANT, None, ["not", "an", "object"])
    assert context == ["not", "an", "object"]


def test_merge_does_not_change_the_assistant() -> None:
    before = (dict(ASSISTANT.config), dict(ASSISTANT.context))
    config, context = merge_run_config(ASSISTANT, {"configurable": {"model": "z"}}, None)
    config["configurable"]["x"] = 1
    context["y"] = 2
    assert (ASSISTANT.config, ASSISTANT.context) == before


def _entry(graph: Any) -> GraphEntry:
    return GraphEntry(graph_id="g", assistant_id="a", graph=graph)


def test_apply_assistant_gives_the_default_assistant_an_empty_context() -> None:
    default = new_assistant(assistant_id="a", graph_id="g", now=T0)
    resolved = ResolvedAssistant(default, _entry(_graph(context_schema=None)))
    spec = apply_assistant(RunSpec(input={"x": 1}), resolved)
    assert (spec.config, spec.context, spec.input) == ({"configurable": {}}, {}, {"x": 1})


@dataclass
class _Context:
    greeting: str = "hello"


class _State(TypedDict, total=False):
    x: int


def _graph(context_schema: Any) -> Any:
    builder = StateGraph(_State, context_schema=context_schema)
    builder.add_node("n", lambda state: state)
    builder.add_edge(START, "n")
    return builder.compile()


@pytest.mark.parametrize(
    ("context_schema", "context", "fitted"),
    [
        (_Context, {"greeting": "hi", "model": "m"}, {"greeting": "hi"}),
        (_Context, {}, {}),
        (_Context, None, None),
        (None, {"anything": 1}, {"anything": 1}),
    ],
)
def test_context_for_graph(context_schema: Any, context: Any, fitted: Any) -> None:
    assert context_for_graph(_graph(context_schema), context) == fitted


@pytest.mark.parametrize(
    ("value", "xray"),
    [(None, False), ("", False), ("true", True), ("False", False), ("2", 2)],
)
def test_parse_xray(value: str | None, xray: bool | int) -> None:
    assert parse_xray(value) == xray


@pytest.mark.parametrize("value", ["0", "-1", "yes", "1.5"])
def test_parse_xray_refuses(value: str) -> None:
    with pytest.raises(Unprocessable):
        parse_xray(value)


@pytest.mark.parametrize(
    ("path", "simple"),
    [
        ("/graphs/execute", True),
        ("/executions/x", True),
        ("/ws/graphs/g", True),
        ("/threads/x", False),
        ("/assistants", False),
        ("/graphsx", False),
        ("/no/such", False),
    ],
)
def test_error_body_by_api(path: str, simple: bool) -> None:
    assert is_simple_api(path) is simple
    body = error_body("not_found", "gone", simple=is_simple_api(path))
    expected: dict[str, Any] = {"error": {"code": "not_found", "message": "gone"}}
    assert body == (expected if simple else {"detail": "gone", **expected})


# Bodies come from the network: whatever JSON arrives, parsing gives a body or a 422.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "assistant_id",
        "graph_id",
        "config",
        "context",
        "metadata",
        "if_exists",
        "name",
        "limit",
        "offset",
        "sort_by",
        "select",
        "version",
        "description",
    ]
)
_bodies = _json | st.dictionaries(_fields, _json, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    body=_bodies,
    model=st.sampled_from(
        [
            AssistantCreateBody,
            AssistantPatchBody,
            AssistantSearchBody,
            AssistantCountBody,
            AssistantVersionsBody,
            AssistantVersionBody,
        ]
    ),
)
def test_any_json_body_parses_or_is_a_422(body: Any, model: type[Body]) -> None:
    outcome: Any
    try:
        outcome = parse(model, body)
    except Unprocessable as exc:
        outcome = exc
    if isinstance(outcome, Unprocessable):
        assert (outcome.status, bool(outcome.message)) == (422, True)
    else:
        assert isinstance(outcome, model)


_flat = st.dictionaries(st.sampled_from("abcde"), st.integers() | st.text(max_size=3), max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    assistant_context=_flat,
    assistant_tags=st.lists(st.text(max_size=3), max_size=2),
    run_configurable=_flat,
    run_context=_flat,
    use_context=st.booleans(),
)
def test_merge_keeps_the_run_over_the_assistant(
    assistant_context: dict[str, Any],
    assistant_tags: list[str],
    run_configurable: dict[str, Any],
    run_context: dict[str, Any],
    use_context: bool,
) -> None:
    assistant = new_assistant(
        assistant_id="a",
        graph_id="g",
        now=T0,
        config={"tags": assistant_tags},
        context=assistant_context,
    )
    before = (copy.deepcopy(assistant.config), copy.deepcopy(assistant.context))
    given_values = run_context if use_context else run_configurable
    config, context = merge_run_config(
        assistant,
        None if use_context else {"configurable": run_configurable},
        run_context if use_context else None,
    )
    assert (assistant.config, assistant.context) == before
    assert config["tags"] == assistant_tags
    for key in assistant_context.keys() | given_values.keys():
        expected = given_values.get(key, assistant_context.get(key))
        assert config["configurable"][key] == expected
        assert context[key] == expected
