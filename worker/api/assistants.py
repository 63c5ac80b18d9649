"""Assistants of the LangGraph Server API: create, read, patch, delete, search, count,
versions, and what their graph looks like (drawing, subgraphs, schemas).

Assistants live in the store: one created through any worker is seen by every other. Ids
in paths are UUIDs (422 otherwise, checked by the error middleware), except that
``/graph`` also takes a graph name, as the official server does. An assistant whose graph
this worker does not serve reads as not found (the official server hides those too).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from worker.api.assistant_graphs import (
    AnyPregel,
    drawable_graph,
    graph_schemas,
    parse_recurse,
    parse_xray,
    subgraph_schemas,
)
from worker.api.assistant_views import (
    AssistantCountBody,
    AssistantCreateBody,
    AssistantPatchBody,
    AssistantSearchBody,
    AssistantVersionBody,
    AssistantVersionsBody,
    assistant_view,
    select_fields,
    version_view,
)
from worker.api.errors import json_response, require_uuid
from worker.api.schemas import parse_body
from worker.api.thread_context import canceller
from worker.errors import BadRequest, Conflict, NotFound
from worker.graphs import GraphEntry, GraphRegistry
from worker.keys import GRAPHS, SETTINGS, STORE
from worker.store.assistants import ConfigContextConflict, new_assistant, sync_config_context
from worker.store.base import (
    ACTIVE_RUN_STATES,
    AssistantExistsError,
    AssistantPatch,
    AssistantQuery,
    AssistantRecord,
    ThreadQuery,
)
from worker.store.crons import CronQuery


def _served(graphs: GraphRegistry, graph_id: str) -> GraphEntry:
    """The graph ``graph_id`` served here; 404 naming the graphs that are, otherwise."""
    entry = graphs.get(graph_id)
    if entry is None or entry.graph_id != graph_id:
        raise NotFound(
            f"Graph '{graph_id}' not found. Expected one of: {sorted(graphs.names)}",
            code="graph_not_found",
        )
    return entry


async def _assistant(request: web.Request, assistant_id: str | None = None) -> AssistantRecord:
    assistant_id = assistant_id or request.match_info["assistant_id"]
    assistant = await request.app[STORE].get_assistant(assistant_id)
    graphs = request.app[GRAPHS]
    if assistant is None or graphs.get(assistant.graph_id) is None:
        raise NotFound(f"assistant {assistant_id} not found", code="assistant_not_found")
    return assistant


def _now() -> datetime:
    return datetime.now(UTC)


async def create_assistant(request: web.Request) -> web.Response:
    body = await parse_body(request, AssistantCreateBody)
    if body.assistant_id is not None:
        require_uuid(body.assistant_id, "assistant")
    _served(request.app[GRAPHS], body.graph_id)
    try:
        record = new_assistant(
            assistant_id=body.assistant_id or str(uuid.uuid4()),
            graph_id=body.graph_id,
            now=_now(),
            config=body.config_dict,
            context=body.context,
            metadata=body.metadata,
            name=body.name,
            description=body.description,
        )
    except ConfigContextConflict as exc:
        raise BadRequest(str(exc), code="config_and_context") from None
    try:
        made = await request.app[STORE].create_assistant(record, if_exists=body.if_exists)
    except AssistantExistsError:
        raise Conflict(
            f"Assistant {record.assistant_id} already exists", code="assistant_exists"
        ) from None
    return json_response(assistant_view(made))


async def get_assistant(request: web.Request) -> web.Response:
    return json_response(assistant_view(await _assistant(request)))


async def patch_assistant(request: web.Request) -> web.Response:
    assistant_id = request.match_info["assistant_id"]
    body = await parse_body(request, AssistantPatchBody)
    if body.graph_id is not None:
        _served(request.app[GRAPHS], body.graph_id)
    try:
        sync_config_context(body.config_dict, body.context)
    except ConfigContextConflict as exc:
        raise BadRequest(str(exc), code="config_and_context") from None
    patch = AssistantPatch(
        graph_id=body.graph_id,
        config=body.config_dict,
        context=body.context,
        metadata=body.metadata,
        name=body.name,
        description=body.description,
    )
    patched = await request.app[STORE].patch_assistant(assistant_id, patch)
    if patched is None:
        raise NotFound(f"Assistant {assistant_id} not found", code="assistant_not_found")
    return json_response(assistant_view(patched))


async def delete_assistant(request: web.Request) -> web.Response:
    """Delete an assistant, its versions and its crons, as the official server does: its
    runs in progress are interrupted first, on whichever worker executes them (each reads
    ``interrupted`` before the 204). ``?delete_threads=true``: its threads go first, their
    runs stopped as a thread's delete stops them."""
    assistant_id = request.match_info["assistant_id"]
    store = request.app[STORE]
    if await store.get_assistant(assistant_id) is None:
        raise NotFound(f"Assistant with ID {assistant_id} not found", code="assistant_not_found")
    if request.query.get("delete_threads", "").lower() == "true":
        await _delete_threads_of(request, assistant_id)
    # Its crons go with it, as on the official server (they could only fail from now on);
    # first, so that none fires a run after the others were interrupted.
    await _delete_crons_of(request, assistant_id)
    await _interrupt_runs_of(request, assistant_id)
    await store.delete_assistant(assistant_id)
    return web.Response(status=204)


async def _delete_threads_of(request: web.Request, assistant_id: str) -> None:
    """Delete the threads whose ``metadata.assistant_id`` is the assistant (its runs' threads)."""
    store, settings = request.app[STORE], request.app[SETTINGS]
    thread_ids: list[str] = []
    while page := await store.search_threads(
        ThreadQuery(metadata={"assistant_id": assistant_id}, limit=100, offset=len(thread_ids))
    ):
        thread_ids += [t.thread_id for t in page]
    for thread_id in thread_ids:
        await canceller(request).stop_thread(
            thread_id, timeout_s=settings.run_lease_s, poll_s=settings.remote_poll_s
        )
        await store.delete_thread(thread_id)


async def _interrupt_runs_of(request: web.Request, assistant_id: str) -> None:
    """Interrupt the assistant's pending and running runs across the fleet."""
    active = await request.app[STORE].find_active_runs(ACTIVE_RUN_STATES)
    runs = [record for record in active if record.assistant_id == assistant_id]
    await canceller(request).cancel_many(runs, "interrupt")


async def _delete_crons_of(request: web.Request, assistant_id: str) -> None:
    store = request.app[STORE]
    cron_ids: list[str] = []
    while page := await store.search_crons(
        CronQuery(assistant_id=assistant_id, limit=100, offset=len(cron_ids))
    ):
        cron_ids += [c.cron_id for c in page]
    for cron_id in cron_ids:
        await store.delete_cron(cron_id)


def _query(body: AssistantSearchBody | AssistantCountBody) -> dict[str, Any]:
    return {"graph_id": body.graph_id, "name": body.name, "metadata": body.metadata}


async def search_assistants(request: web.Request) -> web.Response:
    body = await parse_body(request, AssistantSearchBody)
    if body.graph_id is not None:
        _served(request.app[GRAPHS], body.graph_id)
    query = AssistantQuery(
        **_query(body),
        # One more than asked: whether there is a next page.
        limit=body.limit + 1,
        offset=body.offset,
        sort_by=body.sort_by or "created_at",
        sort_order=body.sort_order or "desc",
    )
    found = await request.app[STORE].search_assistants(query)
    graphs = request.app[GRAPHS]
    page = found[: body.limit]
    if len(found) > body.limit:
        headers = {
            "X-Pagination-Total": str(body.offset + body.limit + 1),
            "X-Pagination-Next": str(body.offset + body.limit),
        }
    else:
        headers = {"X-Pagination-Total": str(body.offset + len(page))}
    views = [assistant_view(a) for a in page if graphs.get(a.graph_id) is not None]
    return json_response(select_fields(views, body.select), headers=headers)


async def count_assistants(request: web.Request) -> web.Response:
    body = await parse_body(request, AssistantCountBody)
    if body.graph_id is not None:
        _served(request.app[GRAPHS], body.graph_id)
    count = await request.app[STORE].count_assistants(AssistantQuery(**_query(body)))
    return json_response(count)


async def list_versions(request: web.Request) -> web.Response:
    assistant_id = request.match_info["assistant_id"]
    body = await parse_body(request, AssistantVersionsBody)
    versions = await request.app[STORE].list_assistant_versions(
        assistant_id, metadata=body.metadata, limit=body.limit, offset=body.offset
    )
    if not versions:
        raise NotFound(f"Assistant {assistant_id} not found", code="assistant_not_found")
    return json_response([version_view(v) for v in versions])


async def set_latest_version(request: web.Request) -> web.Response:
    assistant_id = request.match_info["assistant_id"]
    body = await parse_body(request, AssistantVersionBody)
    store = request.app[STORE]
    if await store.get_assistant(assistant_id) is None:
        raise NotFound(f"Assistant {assistant_id} not found", code="assistant_not_found")
    restored = None
    if body.version is not None:
        restored = await store.set_assistant_version(assistant_id, body.version)
    if restored is None:
        raise NotFound(
            f"Version {body.version} not found for assistant {assistant_id}",
            code="version_not_found",
        )
    return json_response(assistant_view(restored))


@contextlib.asynccontextmanager
async def _graph_of(request: web.Request, assistant: AssistantRecord) -> AsyncIterator[AnyPregel]:
    """The assistant's graph as its runs get it (a factory is called with its config)."""
    entry = _served(request.app[GRAPHS], assistant.graph_id)
    config: Any = {"configurable": {}, **assistant.config}
    async with entry.for_run(config, assistant.context) as graph:
        yield graph


async def get_graph(request: web.Request) -> web.Response:
    ref = request.match_info["assistant_id"]
    named = request.app[GRAPHS].get(ref)
    assistant_id = named.assistant_id if named is not None else require_uuid(ref, "assistant")
    assistant = await _assistant(request, assistant_id)
    xray = parse_xray(request.query.get("xray"))
    async with _graph_of(request, assistant) as graph:
        return json_response(await drawable_graph(graph, xray))


async def get_subgraphs(request: web.Request) -> web.Response:
    assistant = await _assistant(request)
    namespace = request.match_info.get("namespace")
    recurse = parse_recurse(request.query.get("recurse"))
    async with _graph_of(request, assistant) as graph:
        return json_response(await subgraph_schemas(graph, namespace, recurse))


async def get_schemas(request: web.Request) -> web.Response:
    assistant = await _assistant(request)
    async with _graph_of(request, assistant) as graph:
        return json_response({"graph_id": assistant.graph_id, **graph_schemas(graph)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/assistants", create_assistant)
    app.router.add_post("/assistants/search", search_assistants)
    app.router.add_post("/assistants/count", count_assistants)
    app.router.add_get("/assistants/{assistant_id}", get_assistant)
    app.router.add_patch("/assistants/{assistant_id}", patch_assistant)
    app.router.add_delete("/assistants/{assistant_id}", delete_assistant)
    app.router.add_post("/assistants/{assistant_id}/versions", list_versions)
    app.router.add_post("/assistants/{assistant_id}/latest", set_latest_version)
    app.router.add_get("/assistants/{assistant_id}/graph", get_graph)
    app.router.add_get("/assistants/{assistant_id}/schemas", get_schemas)
    app.router.add_get("/assistants/{assistant_id}/subgraphs", get_subgraphs)
    app.router.add_get("/assistants/{assistant_id}/subgraphs/{namespace}", get_subgraphs)
