"""Crons of the LangGraph Server API: create (stateless or on a thread), get, patch, delete,
search, count; and ``cron_firer``, which turns one firing of a cron into a run.

Shapes, defaults and status codes follow ``langgraph-api``: 422 for a bad schedule, timezone
or malformed id, 404 for an unknown assistant, thread or cron, 400 for an empty patch.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from worker.api.cron_bodies import (
    CronCountBody,
    CronCreateBody,
    CronPatchBody,
    CronSearchBody,
    check_select,
    check_uuid,
)
from worker.api.errors import json_response
from worker.api.json_body import json_body
from worker.api.schemas import parse
from worker.crons.schedule import check_schedule, check_timezone, next_run_after
from worker.crons.scheduler import Fire
from worker.errors import BadRequest, NotFound
from worker.keys import SERVICE, STORE, WEBHOOKS
from worker.runs.assistants import resolve_assistant
from worker.runs.manager import RunManager
from worker.runs.service import RunService
from worker.store.crons import CronQuery, CronRecord


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def cron_view(cron: CronRecord) -> dict[str, Any]:
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "user_id": cron.user_id or "",  # the official server's value without auth
        "end_time": _iso(cron.end_time),
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "payload": cron.payload,
        "next_run_date": _iso(cron.next_run_date),
        "metadata": cron.metadata,
        "on_run_completed": cron.on_run_completed,
        "enabled": cron.enabled,
        "created_at": _iso(cron.created_at),
        "updated_at": _iso(cron.updated_at),
    }


def _with_cron_id(payload: dict[str, Any], cron_id: str) -> dict[str, Any]:
    """``payload`` whose ``config.configurable.cron_id`` names the cron, as the official
    server records it (graphs can read which cron started them)."""
    config = dict(payload.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
    return {**payload, "config": config}


async def _assistant_id(request: web.Request, name: str) -> str:
    """The id of the assistant a cron names: a graph name (its default assistant) or the
    UUID of any assistant whose graph is served here; 404 otherwise, as on the official
    server (which answers 404, not 422, for a name that is neither)."""
    service = request.app[SERVICE]
    entry = service.graphs.get(name)
    if entry is not None:
        return entry.assistant_id
    try:
        uuid.UUID(name)
    except ValueError:
        raise NotFound(f"Assistant '{name}' not found", code="assistant_not_found") from None
    resolved = await resolve_assistant(service.store, service.graphs, name)
    return resolved.assistant.assistant_id


async def _create(request: web.Request, thread_id: str | None) -> web.Response:
    raw = await json_body(request)
    body = parse(CronCreateBody, raw)
    check_timezone(body.timezone)
    check_schedule(body.schedule)
    if body.webhook:
        request.app[WEBHOOKS].check_url(body.webhook)
    assistant_id = await _assistant_id(request, body.assistant_id)
    store = request.app[STORE]
    if thread_id is not None and await store.get_thread(thread_id) is None:
        raise NotFound(
            f"Thread with ID '{thread_id}' not found. Please verify the ID is correct and the "
            "thread hasn't been deleted or expired.",
            code="thread_not_found",
        )
    now = _utcnow()
    cron_id = str(uuid.uuid4())
    cron = CronRecord(
        cron_id=cron_id,
        assistant_id=assistant_id,
        thread_id=thread_id,
        schedule=body.schedule,
        timezone=body.timezone,
        payload=_with_cron_id({**raw, "assistant_id": assistant_id}, cron_id),
        metadata=dict(body.metadata or {}),
        on_run_completed=None if thread_id else (body.on_run_completed or "delete"),
        enabled=body.enabled,
        end_time=body.end_time,
        next_run_date=next_run_after(body.schedule, now, body.timezone),
        created_at=now,
        updated_at=now,
    )
    await store.create_cron(cron)
    return json_response(cron_view(cron))


async def create_cron(request: web.Request) -> web.Response:
    return await _create(request, None)


async def create_thread_cron(request: web.Request) -> web.Response:
    thread_id = request.match_info["thread_id"]
    check_uuid(thread_id, "thread")
    return await _create(request, thread_id)


def _cron_id(request: web.Request) -> str:
    cron_id = request.match_info["cron_id"]
    check_uuid(cron_id, "cron")
    return cron_id


def _not_found(cron_id: str) -> NotFound:
    return NotFound(f"Cron '{cron_id}' not found", code="cron_not_found")


async def get_cron(request: web.Request) -> web.Response:
    cron_id = _cron_id(request)
    cron = await request.app[STORE].get_cron(cron_id)
    if cron is None:
        raise _not_found(cron_id)
    return json_response(cron_view(cron))


def _patch_changes(cron: CronRecord, raw: dict[str, Any], body: CronPatchBody) -> dict[str, Any]:
    """The columns a patch sets; ``next_run_date`` only when the schedule or zone changed,
    so that a patch never rewinds a firing another worker just advanced."""
    changes: dict[str, Any] = {}
    if body.timezone is not None:
        changes["timezone"] = check_timezone(body.timezone)
    timezone = changes.get("timezone", cron.timezone)
    if body.schedule is not None:
        changes["schedule"] = check_schedule(body.schedule)
    if body.schedule is not None or "timezone" in changes:
        schedule = changes.get("schedule", cron.schedule)
        changes["next_run_date"] = next_run_after(schedule, _utcnow(), timezone)
    if "end_time" in raw:
        changes["end_time"] = body.end_time  # an explicit null clears it
    if body.enabled is not None:
        changes["enabled"] = body.enabled
    if body.on_run_completed is not None:
        changes["on_run_completed"] = body.on_run_completed
    if body.metadata is not None:
        changes["metadata"] = {**cron.metadata, **body.metadata}
    # The payload takes the whole patch, as the official server's does (each firing reads
    # only the run fields from it).
    merged = {**cron.payload, **raw, "assistant_id": cron.assistant_id}
    changes["payload"] = _with_cron_id(merged, cron.cron_id)
    return changes


async def patch_cron(request: web.Request) -> web.Response:
    cron_id = _cron_id(request)
    raw = await json_body(request)
    if not raw:
        raise BadRequest("Request body cannot be empty", code="empty_body")
    body = parse(CronPatchBody, raw)
    store = request.app[STORE]
    cron = await store.get_cron(cron_id)
    if cron is None:
        raise _not_found(cron_id)
    changes = _patch_changes(cron, raw, body)
    changes["updated_at"] = _utcnow()
    updated = await store.update_cron(cron_id, changes)
    if updated is None:
        raise _not_found(cron_id)
    return json_response(cron_view(updated))


async def delete_cron(request: web.Request) -> web.Response:
    cron_id = _cron_id(request)
    if not await request.app[STORE].delete_cron(cron_id):
        raise _not_found(cron_id)
    return web.Response(status=204)


async def search_crons(request: web.Request) -> web.Response:
    body = parse(CronSearchBody, await json_body(request))
    select = check_select(body.select)
    check_uuid(body.assistant_id, "assistant")
    check_uuid(body.thread_id, "thread")
    query = CronQuery(
        assistant_id=body.assistant_id,
        thread_id=body.thread_id,
        enabled=body.enabled,
        metadata=body.metadata,
        limit=body.limit + 1,  # one more tells whether a next page exists
        offset=body.offset,
        # Without sort_by the official server lists newest first, whatever sort_order says.
        sort_by=body.sort_by or "created_at",
        sort_order=(body.sort_order or "desc") if body.sort_by else "desc",
    )
    crons = await request.app[STORE].search_crons(query)
    page = [cron_view(c) for c in crons[: body.limit]]
    if select:
        page = [{k: v for k, v in view.items() if k in select} for view in page]
    if len(crons) > body.limit:
        next_offset = body.offset + body.limit
        headers = {
            "X-Pagination-Total": str(next_offset + 1),
            "X-Pagination-Next": str(next_offset),
        }
    else:
        headers = {"X-Pagination-Total": str(body.offset + len(page))}
    return json_response(page, headers=headers)


async def count_crons(request: web.Request) -> web.Response:
    body = parse(CronCountBody, await json_body(request))
    check_uuid(body.assistant_id, "assistant")
    check_uuid(body.thread_id, "thread")
    query = CronQuery(
        assistant_id=body.assistant_id, thread_id=body.thread_id, metadata=body.metadata
    )
    return json_response(await request.app[STORE].count_crons(query))


def cron_firer(manager: RunManager, service: RunService) -> Fire:
    """``fire`` for ``CronScheduler``: create the firing's run under ``run_id``, once.

    A run already on record under ``run_id`` means a worker that died after creating it
    already fired this due time: nothing is created again. A worker without a free slot
    raises (``AtCapacity``): the cron stays due for another worker or a later tick.
    """

    async def fire(cron: CronRecord, due: datetime, run_id: str) -> None:
        if await service.store.get_run(run_id) is not None:
            return
        body = parse(CronCreateBody, cron.payload)
        spec = body.run_spec(stateless=cron.thread_id is None, keep=cron.on_run_completed == "keep")
        with manager.admission.reservation() as slot:
            await service.create(
                slot,
                assistant_id=cron.assistant_id,
                spec=spec,
                thread_id=cron.thread_id,
                multitask_strategy=body.multitask_strategy or "enqueue",
                metadata={**cron.metadata, **(body.metadata or {})},
                run_id=run_id,
            )

    return fire


def add_routes(app: web.Application) -> None:
    app.router.add_post("/runs/crons", create_cron)
    app.router.add_post("/runs/crons/search", search_crons)
    app.router.add_post("/runs/crons/count", count_crons)
    app.router.add_get("/runs/crons/{cron_id}", get_cron)
    app.router.add_patch("/runs/crons/{cron_id}", patch_cron)
    app.router.add_delete("/runs/crons/{cron_id}", delete_cron)
    app.router.add_post("/threads/{thread_id}/runs/crons", create_thread_cron)


__all__ = ["add_routes", "cron_firer", "cron_view"]
