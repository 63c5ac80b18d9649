"""Threads of the LangGraph Server API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from langgraph.errors import InvalidUpdateError

from worker.api.errors import json_response
from worker.api.schemas import (
    StateUpdateBody,
    ThreadCreateBody,
    ThreadSearchBody,
    parse_body,
)
from worker.api.thread_context import (
    apply_supersteps,
    canceller,
    entry_of,
    supersteps,
    thread_json,
    threads_with_values,
)
from worker.api.views import checkpoint_view, empty_state, state_view, ttl_view
from worker.errors import Conflict, Unprocessable
from worker.keys import MANAGER, SERVICE, SETTINGS, STORE
from worker.runs.executor import thread_config
from worker.store.base import ThreadExistsError, ThreadQuery

# threads


async def create_thread(request: web.Request) -> web.Response:
    body = await parse_body(request, ThreadCreateBody)
    metadata = dict(body.metadata or {})
    if body.graph_id is not None:
        metadata["graph_id"] = body.graph_id
    graph_id = metadata.get("graph_id")
    entry = request.app[SERVICE].graph(str(graph_id)) if graph_id is not None else None
    steps = supersteps(body.supersteps or [], entry)  # checked before anything is written
    thread_id = body.thread_id or str(uuid.uuid4())
    store = request.app[STORE]
    ttl = body.ttl.thread_ttl() if body.ttl is not None else None
    try:
        thread = await store.create_thread(thread_id, metadata, ttl=ttl)
    except ThreadExistsError:
        if body.if_exists != "do_nothing":
            raise Conflict(f"thread {thread_id} already exists", code="thread_exists") from None
        thread = await request.app[SERVICE].thread(thread_id)
    else:
        if steps and entry is not None:
            await apply_supersteps(entry, thread_id, steps)
    # Names the new thread for the LB, which pins the thread to this worker from the header.
    return json_response(
        await thread_json(request, thread),
        headers={"Content-Location": f"/threads/{thread.thread_id}"},
    )


async def get_thread(request: web.Request) -> web.Response:
    """The thread; with ``?include=ttl`` (comma-separated fields), its TTL when it has one."""
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    view = await thread_json(request, thread)
    included = {f.strip() for f in request.query.get("include", "").split(",")}
    if "ttl" in included and thread.ttl is not None:
        view["ttl"] = ttl_view(thread)
    return json_response(view)


async def delete_thread(request: web.Request) -> web.Response:
    """Cancel the thread's active runs (wherever they execute), then delete it: 204."""
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    settings = request.app[SETTINGS]
    await canceller(request).stop_thread(
        thread.thread_id, timeout_s=settings.run_lease_s, poll_s=settings.remote_poll_s
    )
    await request.app[STORE].delete_thread(thread.thread_id)
    return web.Response(status=204)


def _select(view: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    return view if not fields else {k: v for k, v in view.items() if k in fields}


async def search_threads(request: web.Request) -> web.Response:
    """Threads matching the filters; ``values`` is matched against each thread's state."""
    body = await parse_body(request, ThreadSearchBody)
    query = ThreadQuery(
        metadata=body.metadata,
        ids=body.ids,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    if body.values:
        views = await threads_with_values(request, query, body.values)
        views = views[body.offset : body.offset + body.limit]
    else:
        threads = await request.app[STORE].search_threads(query)
        views = [await thread_json(request, t) for t in threads]
    return json_response([_select(v, body.select) for v in views])


async def get_state(request: web.Request) -> web.Response:
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    entry = entry_of(request, thread)
    if entry is None:
        return json_response(empty_state(thread.thread_id))
    subgraphs = request.query.get("subgraphs", "false").lower() in ("1", "true")
    checkpoint_id = request.match_info.get("checkpoint_id")
    snapshot = await entry.graph.aget_state(
        thread_config(thread.thread_id, checkpoint_id), subgraphs=subgraphs
    )
    return json_response(state_view(snapshot))


async def update_state(request: web.Request) -> web.Response:
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    body = await parse_body(request, StateUpdateBody)
    entry = entry_of(request, thread)
    if entry is None:
        raise Conflict(
            f"thread {thread.thread_id} has no graph yet: run it once, or create it with a "
            "graph_id",
            code="thread_has_no_graph",
        )
    if request.app[MANAGER].thread_active(thread.thread_id):
        raise Conflict(f"thread {thread.thread_id} has an active run", code="thread_busy")
    checkpoint_id = body.checkpoint_id or (
        body.checkpoint.checkpoint_id if body.checkpoint else None
    )
    try:
        config = await entry.graph.aupdate_state(
            thread_config(thread.thread_id, checkpoint_id), body.values, as_node=body.as_node
        )
    except (InvalidUpdateError, ValueError, KeyError) as exc:
        raise Unprocessable(f"cannot update state: {exc}", code="invalid_update") from None
    await request.app[STORE].update_thread(thread.thread_id)  # activity: re-arms a TTL
    return json_response({"checkpoint": checkpoint_view(config)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/threads", create_thread)
    app.router.add_post("/threads/search", search_threads)
    app.router.add_get("/threads/{thread_id}", get_thread)
    app.router.add_delete("/threads/{thread_id}", delete_thread)
    app.router.add_get("/threads/{thread_id}/state", get_state)
    app.router.add_post("/threads/{thread_id}/state", update_state)
    app.router.add_get("/threads/{thread_id}/state/{checkpoint_id}", get_state)
