"""What ``/assistants/{id}/graph``, ``/subgraphs`` and ``/schemas`` tell of a graph.

The same JSON the LangGraph Server derives from a compiled graph: the drawable graph
(``Graph.to_json``, node ids left out of node data), and the five JSON schemas (input,
output, state, config — only its ``configurable`` part — and context). A schema LangGraph
cannot derive is ``null``, as there, never an error.
"""

from __future__ import annotations

import warnings
from typing import Any

import structlog
from langchain_core.runnables.utils import create_model
from langgraph.pregel import Pregel
from langgraph.warnings import LangGraphDeprecationWarning
from pydantic import TypeAdapter

from worker.errors import Unprocessable

log = structlog.get_logger("worker.assistants")

AnyPregel = Pregel[Any, Any, Any, Any]
# Keys of ``configurable`` the server fills itself: not part of a graph's config schema.
_SERVER_CONFIGURABLE = (
    "__pregel_checkpointer",
    "__pregel_store",
    "checkpoint_id",
    "checkpoint_ns",
    "thread_id",
)


def parse_xray(value: str | None) -> bool | int:
    """The ``xray`` query parameter: true/false, or a positive depth; 422 otherwise."""
    if not value:
        return False
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    try:
        depth = int(value)
    except ValueError:
        depth = 0
    if depth <= 0:
        raise Unprocessable("Invalid xray value", code="invalid_request")
    return depth


def parse_recurse(value: str | None) -> bool:
    return value in ("true", "True")


async def drawable_graph(graph: AnyPregel, xray: bool | int) -> dict[str, Any]:
    try:
        drawable = await graph.aget_graph(xray=xray)
    except NotImplementedError:
        raise Unprocessable(
            "The graph does not support visualization", code="not_drawable"
        ) from None
    doc: dict[str, Any] = drawable.to_json()
    for node in doc.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)
    return doc


def _configurable_schema(graph: AnyPregel) -> dict[str, Any]:
    # Deprecated in LangGraph 1.0, yet still what the official server reports as the
    # config schema: the warning says nothing to this worker's operators.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecationWarning)
        config_schema = graph.config_schema()
    fields = getattr(config_schema, "model_fields", None)
    if not fields or "configurable" not in fields:
        return {}
    annotation: Any = fields["configurable"].annotation
    schema: dict[str, Any] = TypeAdapter(annotation).json_schema()
    if schema:
        for key in _SERVER_CONFIGURABLE:
            schema.get("properties", {}).pop(key, None)
    config_type = getattr(graph, "config_type", None)
    if config_type is not None and hasattr(config_type, "__name__"):
        schema["title"] = config_type.__name__
    return schema


def _state_schema(graph: AnyPregel) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = getattr(graph.channels[key], "UpdateType", Any)
        try:
            create_model(key, __root__=(update_type, None)).model_json_schema()
            fields[key] = (update_type, None)
        except Exception:
            fields[key] = (Any, None)
    schema: dict[str, Any] = create_model(graph.get_name("State"), **fields).model_json_schema()
    return schema


def _safely(graph: AnyPregel, what: str, derive: Any) -> Any:
    try:
        return derive()
    except Exception as exc:
        log.warning("schema_unavailable", graph=graph.name, schema=what, error=str(exc))
        return None


def graph_schemas(graph: AnyPregel) -> dict[str, Any]:
    """The graph's ``input_schema``, ``output_schema``, ``state_schema``, ``config_schema``
    and ``context_schema``; each None when LangGraph cannot derive it."""
    return {
        "input_schema": _safely(graph, "input", graph.get_input_jsonschema),
        "output_schema": _safely(graph, "output", graph.get_output_jsonschema),
        "state_schema": _safely(graph, "state", lambda: _state_schema(graph)),
        "config_schema": _safely(graph, "config", lambda: _configurable_schema(graph)),
        "context_schema": _safely(graph, "context", graph.get_context_jsonschema),
    }


async def subgraph_schemas(
    graph: AnyPregel, namespace: str | None, recurse: bool
) -> dict[str, dict[str, Any]]:
    """Schemas of each subgraph by namespace (only ``namespace``'s when given)."""
    try:
        return {
            ns: graph_schemas(subgraph)  # type: ignore[arg-type]
            async for ns, subgraph in graph.aget_subgraphs(namespace=namespace, recurse=recurse)
        }
    except NotImplementedError:
        raise Unprocessable(
            "The graph does not support visualization", code="not_drawable"
        ) from None
