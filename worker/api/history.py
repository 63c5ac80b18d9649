"""A thread's past: its history (every checkpoint, newest first) and its state at one.

``GET /threads/{id}/history?limit=&before=``, ``POST /threads/{id}/history`` (``limit``,
``before``, ``metadata``, ``checkpoint``) and ``POST /threads/{id}/state/checkpoint``, as
the official server answers them. A thread no run has touched has no history (``[]``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from langchain_core.runnables import RunnableConfig

from worker.api.errors import json_response
from worker.api.schemas import CheckpointBody, parse, parse_body
from worker.api.thread_context import entry_of
from worker.api.thread_schemas import HistoryBody, StateAtCheckpointBody
from worker.api.views import empty_state, state_view
from worker.keys import SERVICE


def _config(thread_id: str, checkpoint: CheckpointBody | None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint is not None:
        configurable.update(checkpoint.model_dump(exclude_none=True, exclude={"thread_id"}))
    return {"configurable": configurable}


def _before(thread_id: str, before: str | CheckpointBody | None) -> RunnableConfig | None:
    checkpoint_id = before.checkpoint_id if isinstance(before, CheckpointBody) else before
    if not checkpoint_id:
        return None
    return {"configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}}


async def _history(request: web.Request, body: HistoryBody) -> web.Response:
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    entry = entry_of(request, thread)
    if entry is None:
        return json_response([])
    states = [
        state_view(snapshot)
        async for snapshot in entry.graph.aget_state_history(
            _config(thread.thread_id, body.checkpoint),
            limit=body.limit,
            before=_before(thread.thread_id, body.before),
            filter=body.metadata,
        )
    ]
    return json_response(states)


async def get_history(request: web.Request) -> web.Response:
    query: dict[str, Any] = {"limit": request.query.get("limit", "1")}
    if request.query.get("before"):
        query["before"] = request.query["before"]
    return await _history(request, parse(HistoryBody, query))


async def post_history(request: web.Request) -> web.Response:
    return await _history(request, await parse_body(request, HistoryBody))


async def state_at_checkpoint(request: web.Request) -> web.Response:
    """``POST /threads/{id}/state/checkpoint``: the state at ``checkpoint``."""
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    body = await parse_body(request, StateAtCheckpointBody)
    entry = entry_of(request, thread)
    if entry is None:
        return json_response(empty_state(thread.thread_id))
    snapshot = await entry.graph.aget_state(
        _config(thread.thread_id, body.checkpoint), subgraphs=body.subgraphs
    )
    return json_response(state_view(snapshot))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/threads/{thread_id}/history", get_history)
    app.router.add_post("/threads/{thread_id}/history", post_history)
    app.router.add_post("/threads/{thread_id}/state/checkpoint", state_at_checkpoint)
