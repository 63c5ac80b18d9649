"""Thread operations beyond create/get/search: patch, copy, count, prune and storage.

Copy and prune work on the thread's checkpoints through the checkpointer
(``store.checkpoint_ops``), so they behave the same on both stores.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from worker.api.errors import json_response
from worker.api.schemas import parse_body
from worker.api.thread_context import canceller, thread_json, threads_with_values
from worker.api.thread_schemas import ThreadCountBody, ThreadPatchBody, ThreadPruneBody
from worker.api.views import storage_view
from worker.errors import Conflict
from worker.keys import SERVICE, SETTINGS, STORE
from worker.store.base import ThreadQuery
from worker.store.checkpoint_ops import copy_checkpoints, keep_latest


async def patch_thread(request: web.Request) -> web.Response:
    """Merge ``metadata`` into the thread's, set its ``ttl`` (armed from now); the thread as
    it is now."""
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    body = await parse_body(request, ThreadPatchBody)
    store = request.app[STORE]
    ttl = body.ttl.thread_ttl() if body.ttl is not None else None
    if body.metadata or ttl is not None:
        await store.update_thread(thread.thread_id, metadata=body.metadata, ttl=ttl)
    thread = await request.app[SERVICE].thread(thread.thread_id)
    return json_response(await thread_json(request, thread))


async def copy_thread(request: web.Request) -> web.Response:
    """A new thread with the source's metadata, status and every checkpoint.

    The copy is written before it is named to anyone; if copying the checkpoints fails,
    the new thread is deleted again, so a failed copy leaves nothing behind.
    """
    store = request.app[STORE]
    source_id = request.match_info["thread_id"]
    source = await store.get_thread(source_id)
    if source is None:  # 409, not 404, as from the official server
        raise Conflict(f"thread {source_id} not found", code="thread_not_found")
    target_id = str(uuid.uuid4())
    await store.create_thread(target_id, source.metadata)
    try:
        await copy_checkpoints(store.checkpointer, source.thread_id, target_id)
        if source.status != "busy":  # a copy runs nothing: a busy source's copy is idle
            await store.update_thread(target_id, status=source.status)
    except BaseException:
        await store.delete_thread(target_id)
        raise
    copied = await request.app[SERVICE].thread(target_id)
    return json_response(
        await thread_json(request, copied), headers={"Content-Location": f"/threads/{target_id}"}
    )


async def count_threads(request: web.Request) -> web.Response:
    body = await parse_body(request, ThreadCountBody)
    query = ThreadQuery(metadata=body.metadata, status=body.status)
    if body.values:
        return json_response(len(await threads_with_values(request, query, body.values)))
    return json_response(await request.app[STORE].count_threads(query))


async def prune_threads(request: web.Request) -> web.Response:
    """``delete``: threads (runs cancelled first) are deleted; ``keep_latest``: each keeps
    only its latest checkpoint. Unknown ids are skipped; ``{"pruned_count": n}``."""
    body = await parse_body(request, ThreadPruneBody)
    store, settings = request.app[STORE], request.app[SETTINGS]
    pruned = 0
    for thread_id in dict.fromkeys(body.thread_ids):
        thread = await store.get_thread(thread_id)
        if thread is None:
            continue
        if body.strategy == "delete":
            await canceller(request).stop_thread(
                thread_id, timeout_s=settings.run_lease_s, poll_s=settings.remote_poll_s
            )
            pruned += await store.delete_thread(thread_id)
            continue
        if thread.status == "busy":
            raise Conflict(
                f"thread {thread_id} has an active run; prune it once the run ends",
                code="thread_busy",
            )
        await keep_latest(store.checkpointer, thread_id)
        pruned += 1
    return json_response({"pruned_count": pruned})


async def thread_storage(request: web.Request) -> web.Response:
    """The bytes the thread's checkpoints occupy, as stored (``worker.store.storage``)."""
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    storage = await request.app[STORE].thread_storage(thread.thread_id)
    return json_response(storage_view(thread.thread_id, storage))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/threads/{thread_id}/storage", thread_storage)
    app.router.add_post("/threads/count", count_threads)
    app.router.add_post("/threads/prune", prune_threads)
    app.router.add_patch("/threads/{thread_id}", patch_thread)
    app.router.add_post("/threads/{thread_id}/copy", copy_thread)
