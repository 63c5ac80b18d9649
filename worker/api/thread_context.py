"""What the thread handlers share: a thread's graph, its state as JSON, and the canceller.

Handler modules do not import each other; what two of them need lives here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from langgraph.errors import InvalidUpdateError
from langgraph.types import Command, StateSnapshot, StateUpdate

from worker.api.schemas import parse
from worker.api.thread_schemas import Superstep
from worker.api.views import thread_view
from worker.errors import BadRequest, Unprocessable
from worker.graphs import GraphEntry
from worker.keys import GRAPHS, MANAGER, PEER_COMMANDS, SETTINGS, STORE
from worker.runs.cancelling import Canceller
from worker.runs.executor import thread_config
from worker.store.base import ThreadQuery, ThreadRecord

_SCAN_PAGE = 500


def entry_of(request: web.Request, thread: ThreadRecord) -> GraphEntry | None:
    """The graph the thread ran (or was created for), if this worker serves it."""
    graph_id = thread.metadata.get("graph_id")
    return request.app[GRAPHS].get(graph_id) if isinstance(graph_id, str) else None


async def snapshot(request: web.Request, thread: ThreadRecord) -> StateSnapshot | None:
    entry = entry_of(request, thread)
    if entry is None:
        return None
    return await entry.graph.aget_state(thread_config(thread.thread_id))


async def thread_json(request: web.Request, thread: ThreadRecord) -> dict[str, Any]:
    return thread_view(thread, await snapshot(request, thread))


def canceller(request: web.Request) -> Canceller:
    app = request.app
    return Canceller(app[MANAGER], app[PEER_COMMANDS], app[STORE], app[SETTINGS].worker_id)


def contains(document: Any, wanted: Any) -> bool:
    """JSON containment as Postgres' ``@>``: what ``wanted`` says, ``document`` has.

    Objects: every key of ``wanted`` present with a contained value; arrays: every element
    of ``wanted`` contained in some element of ``document``; anything else: equal.
    """
    if isinstance(wanted, Mapping):
        return isinstance(document, Mapping) and all(
            key in document and contains(document[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(document, list) and all(
            any(contains(item, w) for item in document) for w in wanted
        )
    return bool(document == wanted)


async def threads_with_values(
    request: web.Request, query: ThreadQuery, values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Every thread matching ``query``'s filters whose state contains ``values``, as JSON,
    in ``query``'s order (its paging is the caller's: state is not in the records)."""
    store, found, offset = request.app[STORE], [], 0
    while True:
        page = dataclasses.replace(query, limit=_SCAN_PAGE, offset=offset)
        threads = await store.search_threads(page)
        for thread in threads:
            view = await thread_json(request, thread)
            if contains(view["values"], values):
                found.append(view)
        if len(threads) < _SCAN_PAGE:
            return found
        offset += _SCAN_PAGE


def supersteps(raw: list[dict[str, Any]], entry: GraphEntry | None) -> list[list[StateUpdate]]:
    """``supersteps`` of a thread creation as LangGraph state updates; 400/422 when they
    cannot apply (no graph, a malformed step)."""
    if not raw:
        return []
    if entry is None:
        raise BadRequest(
            "supersteps need the thread's graph: give graph_id (or metadata.graph_id)",
            code="thread_has_no_graph",
        )
    steps = [parse(Superstep, step) for step in raw]
    return [
        [
            StateUpdate(
                # A Command is applied as the official server applies it (annotated dict).
                Command(**u.command.model_dump(exclude_none=True)) if u.command else u.values,  # type: ignore[arg-type]
                u.as_node,
            )
            for u in step.updates
        ]
        for step in steps
    ]


async def apply_supersteps(
    entry: GraphEntry, thread_id: str, steps: list[list[StateUpdate]]
) -> None:
    try:
        await entry.graph.abulk_update_state(thread_config(thread_id), steps)
    except (InvalidUpdateError, ValueError, KeyError) as exc:
        raise Unprocessable(f"cannot apply supersteps: {exc}", code="invalid_update") from None
