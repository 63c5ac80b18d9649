"""Executing one run: LangGraph's ``astream`` turned into events, and the run's outcome.

The executor knows LangGraph, not HTTP: it maps the requested stream modes to LangGraph's,
names each chunk as the LangGraph Server does (``mode`` or ``mode|namespace``), and
classifies how the run ended. Persistence and ordering are the manager's job.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphDrained
from langgraph.pregel import Pregel
from langgraph.runtime import RunControl
from langgraph.types import Command, StreamMode

from worker import jsonutil
from worker.graphs import GraphEntry, context_for
from worker.runs.model import STREAM_MODES, RunSpec
from worker.store.base import RunRecord, RunState

Emit = Callable[[str, Any], object]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended and the body ``wait``/``join`` answer with."""

    state: RunState
    output: Any
    error: dict[str, Any] | None = None


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def run_config(record: RunRecord, spec: RunSpec) -> RunnableConfig:
    """The RunnableConfig of a run: the caller's config plus thread, checkpoint and ids."""
    config: dict[str, Any] = dict(spec.config)
    configurable = {**(config.get("configurable") or {}), "thread_id": record.thread_id}
    if spec.checkpoint_id is not None:
        configurable["checkpoint_id"] = spec.checkpoint_id
    if spec.checkpoint_ns is not None:
        configurable["checkpoint_ns"] = spec.checkpoint_ns
    config["configurable"] = configurable
    # Lands in every checkpoint's metadata: rollback and history find the run by it.
    config["metadata"] = {
        **(config.get("metadata") or {}),
        **record.metadata,
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "graph_id": record.graph_id,
        "assistant_id": record.assistant_id,
    }
    config["run_id"] = uuid.UUID(record.run_id)
    return config  # type: ignore[return-value]


def graph_input(spec: RunSpec) -> Any:
    if spec.command is not None:
        return Command(
            resume=spec.command.get("resume"),
            update=spec.command.get("update"),
            goto=spec.command.get("goto") or (),
        )
    return spec.input


async def final_values(graph: Pregel[Any, Any, Any, Any], thread_id: str) -> tuple[Any, bool]:
    """The thread's values as ``wait`` returns them, and whether it waits at an interrupt."""
    snapshot = await graph.aget_state(thread_config(thread_id))
    values = jsonutil.to_jsonable(snapshot.values)
    if snapshot.interrupts:
        if not isinstance(values, dict):
            values = {"__root__": values}
        values["__interrupt__"] = jsonutil.to_jsonable(list(snapshot.interrupts))
    return values, bool(snapshot.interrupts or snapshot.next)


class _MessageAccumulator:
    """Builds ``messages/partial`` events (whole messages so far) from message chunks."""

    def __init__(self) -> None:
        self._messages: dict[str, Any] = {}

    def feed(self, chunk: Any, metadata: Any, name: str, emit: Emit) -> None:
        msg_id = getattr(chunk, "id", None) or str(id(chunk))
        if msg_id not in self._messages:
            self._messages[msg_id] = chunk
            emit(name.replace("messages", "messages/metadata", 1), {msg_id: {"metadata": metadata}})
        else:
            try:
                self._messages[msg_id] = self._messages[msg_id] + chunk
            except TypeError:
                self._messages[msg_id] = chunk
        emit(name.replace("messages", "messages/partial", 1), [self._messages[msg_id]])


async def _chunks(
    graph: Pregel[Any, Any, Any, Any],
    spec: RunSpec,
    config: RunnableConfig,
    control: RunControl,
    emit: Emit,
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """``(namespace, mode, data)`` chunks of the run; ``events`` are emitted on the way."""
    modes: list[StreamMode] = sorted({m for r in spec.stream_mode if (m := STREAM_MODES[r])})
    kwargs: dict[str, Any] = {
        "context": context_for(spec.context),
        "stream_mode": modes or ["values"],
        "subgraphs": True,
        "interrupt_before": spec.interrupt_before,
        "interrupt_after": spec.interrupt_after,
        "durability": spec.durability,
        "control": control,
    }
    if "events" not in spec.stream_mode:
        async for chunk in graph.astream(graph_input(spec), config, **kwargs):
            yield chunk
        return
    root_id = None
    async for event in graph.astream_events(graph_input(spec), config, version="v2", **kwargs):
        root_id = root_id or event["run_id"]
        if event["event"] == "on_chain_stream" and event["run_id"] == root_id:
            # The graph's own stream-mode output, relayed through the callbacks.
            if modes:
                yield event["data"]["chunk"]
        else:
            emit("events", event)


async def execute(
    entry: GraphEntry,
    record: RunRecord,
    spec: RunSpec,
    control: RunControl,
    emit: Emit,
    *,
    scratch: bool = False,
) -> Outcome:
    """Run ``entry``'s graph for ``record``; every chunk goes to ``emit(event_name, data)``.

    A factory's graph is built for this run with its config (``GraphEntry.for_run``);
    ``scratch``: the run's checkpoints are kept on the worker's in-memory saver.

    Returns the outcome for a graph that finished, paused (drained by ``control``) or
    raised. ``CancelledError`` propagates: the caller decides what a cancellation means.
    """
    tuple_messages = "messages-tuple" in spec.stream_mode
    partial_messages = "messages" in spec.stream_mode
    accumulator = _MessageAccumulator()
    graph, config = entry.graph_for(scratch=scratch), run_config(record, spec)
    try:
        async with entry.for_run(config, context_for(spec.context), scratch=scratch) as run_graph:
            async for namespace, mode, data in _chunks(run_graph, spec, config, control, emit):
                if namespace and not spec.stream_subgraphs:
                    continue
                name = "|".join((mode, *namespace))
                if mode == "messages":
                    if tuple_messages:
                        emit(name, list(data))
                    if partial_messages:
                        accumulator.feed(data[0], data[1], name, emit)
                elif mode in spec.stream_mode:
                    emit(name, data)
    except GraphDrained:
        values, _ = await final_values(graph, record.thread_id)
        return Outcome("paused", values)
    except Exception as exc:
        error = {"error": type(exc).__name__, "message": str(exc)}
        emit("error", error)
        return Outcome("error", {"__error__": error}, error)
    values, waiting = await final_values(graph, record.thread_id)
    return Outcome("interrupted" if waiting else "success", values)
