"""Runs of the LangGraph Server API: create, wait, stream, get, list, cancel, join, delete.

Paths that name a thread (``/threads/{thread_id}/runs...``) are the ones the LB pins to the
worker holding the thread. Responses that create a run carry ``Content-Location:
/threads/{t}/runs/{r}``; ``wait`` and ``join`` carry ``Location: .../join`` and streams
``Location: .../stream``, which the SDK re-GETs when a body is cut.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from worker import jsonutil
from worker.api import sse
from worker.api.errors import json_response
from worker.api.schemas import RunCreateBody, parse_body
from worker.api.views import run_view
from worker.errors import Conflict, NotFound, Unprocessable
from worker.keys import MANAGER, SERVICE, SETTINGS, STORE
from worker.runs.active import ActiveRun
from worker.runs.model import STREAM_MODES, CancelAction, RunSpec
from worker.store.base import ACTIVE_RUN_STATES, RunRecord

log = structlog.get_logger("worker.api.runs")


def run_path(thread_id: str, run_id: str) -> str:
    return f"/threads/{thread_id}/runs/{run_id}"


def spec_from_body(body: RunCreateBody, *, stateless: bool) -> RunSpec:
    checkpoint = body.checkpoint
    return RunSpec(
        input=body.input,
        command=body.command.model_dump(exclude_none=True) if body.command else None,
        config=body.config or {},
        context=body.context,
        stream_mode=body.stream_mode,
        stream_subgraphs=body.stream_subgraphs,
        stream_resumable=body.stream_resumable,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
        durability=body.durability_mode(),
        checkpoint_id=body.checkpoint_id or (checkpoint.checkpoint_id if checkpoint else None),
        checkpoint_ns=checkpoint.checkpoint_ns if checkpoint else None,
        after_seconds=body.after_seconds,
        on_completion=body.on_completion or ("delete" if stateless else "keep"),
        webhook=body.webhook,
    )


async def _create(request: web.Request) -> tuple[ActiveRun, RunCreateBody]:
    # Capacity first: a worker that cannot take the run answers 503 before reading anything.
    request.app[MANAGER].ensure_capacity()
    thread_id = request.match_info.get("thread_id")
    body = await parse_body(request, RunCreateBody)
    run = await request.app[SERVICE].create(
        assistant_id=body.assistant_id,
        spec=spec_from_body(body, stateless=thread_id is None),
        thread_id=thread_id,
        if_not_exists=body.if_not_exists,
        multitask_strategy=body.multitask_strategy,
        metadata=body.metadata,
    )
    return run, body


def _headers(run: ActiveRun, location_suffix: str | None) -> dict[str, str]:
    path = run_path(run.thread_id, run.run_id)
    headers = {"Content-Location": path}
    if location_suffix is not None and not run.ephemeral:
        headers["Location"] = path + location_suffix
    return headers


async def create_run(request: web.Request) -> web.Response:
    run, _ = await _create(request)
    return json_response(run_view(run.record), headers=_headers(run, None))


async def _answer_when_done(
    request: web.Request, run: ActiveRun, headers: dict[str, str], cancel_on_disconnect: bool
) -> web.StreamResponse:
    """Hold the response until the run ends, writing a blank line every heartbeat.

    JSON allows leading whitespace, so the blanks keep proxies from timing the wait out
    without changing what the SDK decodes.
    """
    heartbeat_s = request.app[SETTINGS].heartbeat_s
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", **headers}
    )
    await response.prepare(request)
    try:
        while not run.done.is_set():
            try:
                async with asyncio.timeout(heartbeat_s):
                    await run.done.wait()
            except TimeoutError:
                await response.write(b"\n")
    except (ConnectionError, asyncio.CancelledError):
        if cancel_on_disconnect and not run.done.is_set():
            log.info("client left; cancelling its run", run_id=run.run_id)
            request.app[MANAGER].stop(run.run_id, "interrupt")
        raise
    assert run.outcome is not None
    await response.write(jsonutil.dumps(run.outcome.output))
    await response.write_eof()
    return response


async def wait_run(request: web.Request) -> web.StreamResponse:
    run, body = await _create(request)
    cancel = (body.on_disconnect or "cancel") == "cancel"
    return await _answer_when_done(request, run, _headers(run, "/join"), cancel)


async def stream_run(request: web.Request) -> web.StreamResponse:
    run, body = await _create(request)
    default = "continue" if body.stream_resumable else "cancel"
    cancel = (body.on_disconnect or default) == "cancel"
    response = await sse.open_stream(request, _headers(run, "/stream"))
    try:
        await sse.send_metadata(response, run.run_id)
        await sse.pump(
            response, run.events, after_seq=-1, heartbeat_s=request.app[SETTINGS].heartbeat_s
        )
    except (ConnectionError, asyncio.CancelledError):
        if cancel and not run.done.is_set():
            log.info("client left the stream; cancelling its run", run_id=run.run_id)
            request.app[MANAGER].stop(run.run_id, "interrupt")
        raise
    await response.write_eof()
    return response


async def _record(request: web.Request) -> RunRecord:
    thread_id, run_id = request.match_info["thread_id"], request.match_info["run_id"]
    record = await request.app[STORE].get_run(run_id)
    if record is None or record.thread_id != thread_id:
        raise NotFound(f"run {run_id} not found on thread {thread_id}", code="run_not_found")
    return record


def _local(request: web.Request, record: RunRecord) -> ActiveRun | None:
    run = request.app[MANAGER].get(record.run_id)
    if run is None and record.status in ACTIVE_RUN_STATES:
        raise Conflict(
            f"run {record.run_id} is held by worker {record.worker_id}; "
            "send requests naming its thread there",
            code="run_held_elsewhere",
        )
    return run


async def get_run(request: web.Request) -> web.Response:
    return json_response(run_view(await _record(request)))


async def list_runs(request: web.Request) -> web.Response:
    thread_id = request.match_info["thread_id"]
    await request.app[SERVICE].thread(thread_id)
    query = request.query
    try:
        limit, offset = int(query.get("limit", 10)), int(query.get("offset", 0))
    except ValueError:
        raise Unprocessable("limit and offset must be integers", code="invalid_request") from None
    status = query.get("status") or None
    statuses = {"pending", "running", "error", "success", "timeout", "interrupted"}
    if status is not None and status not in statuses:
        raise Unprocessable(f"unknown status {status!r}", code="invalid_request")
    if "select" in query:
        raise Unprocessable("unsupported query parameter: select", code="unsupported_field")
    records = await request.app[STORE].list_runs(
        thread_id,
        limit=limit,
        offset=offset,
        status=status,  # type: ignore[arg-type]
    )
    return json_response([run_view(r) for r in records])


async def delete_run(request: web.Request) -> web.Response:
    record = await _record(request)
    if record.status in ACTIVE_RUN_STATES:
        raise Conflict(
            f"run {record.run_id} is {record.status}; cancel it first", code="run_active"
        )
    await request.app[STORE].delete_run(record.run_id)
    return web.Response(status=204)


async def cancel_run(request: web.Request) -> web.StreamResponse:
    record = await _record(request)
    action = request.query.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        raise Unprocessable(f"unknown action {action!r}", code="invalid_request")
    wait = request.query.get("wait", "0").lower() in ("1", "true")
    run = _local(request, record)
    if run is None or run.done.is_set():
        raise Conflict(f"run {record.run_id} has already ended", code="run_not_active")
    stop_action: CancelAction = "rollback" if action == "rollback" else "interrupt"
    request.app[MANAGER].stop(run.run_id, stop_action)
    if not wait:
        return web.Response(status=202)
    path = run_path(run.thread_id, run.run_id)
    return await _answer_when_done(request, run, {"Location": path + "/join"}, False)


async def join_run(request: web.Request) -> web.StreamResponse:
    record = await _record(request)
    run = _local(request, record)
    if run is None:
        return json_response(record.result)
    path = run_path(run.thread_id, run.run_id)
    return await _answer_when_done(request, run, {"Location": path + "/join"}, False)


def _modes(request: web.Request) -> set[str] | None:
    requested = [m for m in request.query.getall("stream_mode", []) if m]
    unknown = [m for m in requested if m not in STREAM_MODES]
    if unknown:
        raise Unprocessable(f"unsupported stream_mode {', '.join(unknown)}", code="invalid_request")
    return {STREAM_MODES[m] or m for m in requested} or None


async def join_stream(request: web.Request) -> web.StreamResponse:
    """Replay the run's retained events (after ``Last-Event-ID``), then follow it live."""
    record = await _record(request)
    modes = _modes(request)
    cancel = request.query.get("cancel_on_disconnect", "false").lower() in ("1", "true")
    run = _local(request, record)
    response = await sse.open_stream(
        request, {"Location": run_path(record.thread_id, record.run_id) + "/stream"}
    )
    if run is None:
        # Ended and no longer retained: nothing to replay. The SDK reads the run's status.
        await response.write_eof()
        return response
    after = sse.parse_last_event_id(request.headers.get("Last-Event-ID"))
    try:
        await sse.pump(
            response,
            run.events,
            after_seq=after,
            heartbeat_s=request.app[SETTINGS].heartbeat_s,
            modes=modes,
        )
    except (ConnectionError, asyncio.CancelledError):
        if cancel and not run.done.is_set():
            request.app[MANAGER].stop(run.run_id, "interrupt")
        raise
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/threads/{thread_id}/runs", create_run)
    app.router.add_post("/threads/{thread_id}/runs/wait", wait_run)
    app.router.add_post("/threads/{thread_id}/runs/stream", stream_run)
    app.router.add_get("/threads/{thread_id}/runs", list_runs)
    app.router.add_get("/threads/{thread_id}/runs/{run_id}", get_run)
    app.router.add_delete("/threads/{thread_id}/runs/{run_id}", delete_run)
    app.router.add_post("/threads/{thread_id}/runs/{run_id}/cancel", cancel_run)
    app.router.add_get("/threads/{thread_id}/runs/{run_id}/join", join_run)
    app.router.add_get("/threads/{thread_id}/runs/{run_id}/stream", join_stream)
    app.router.add_post("/runs", create_run)
    app.router.add_post("/runs/wait", wait_run)
    app.router.add_post("/runs/stream", stream_run)
