"""Runs of the LangGraph Server API: create, wait, stream, get, list, cancel, join, delete.

Paths that name a thread (``/threads/{thread_id}/runs...``) are the ones the LB pins to the
worker holding the thread. Responses that create a run carry ``Content-Location:
/threads/{t}/runs/{r}``; ``wait`` and ``join`` carry ``Location: .../join`` and streams
``Location: .../stream``, which the SDK re-GETs when a body is cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from worker import jsonutil
from worker.api import sse
from worker.api.errors import json_response
from worker.api.run_specs import spec_from_body
from worker.api.schemas import RunCreateBody, parse_body
from worker.api.thread_context import canceller
from worker.errors import Conflict, NotFound, Unprocessable
from worker.keys import MANAGER, RELAY, SERVICE, SETTINGS, STORE
from worker.runs.active import ActiveRun, RunNotActiveError
from worker.runs.cancelling import held_elsewhere
from worker.runs.model import STREAM_MODES, CancelAction, run_view
from worker.store.base import ACTIVE_RUN_STATES, RunRecord

log = structlog.get_logger("worker.api.runs")


def run_path(thread_id: str, run_id: str) -> str:
    return f"/threads/{thread_id}/runs/{run_id}"


async def _create(request: web.Request) -> tuple[ActiveRun, RunCreateBody]:
    # The slot is taken first: a worker that cannot take the run answers 503 before reading.
    with request.app[MANAGER].admission.reservation() as slot:
        thread_id = request.match_info.get("thread_id")
        body = await parse_body(request, RunCreateBody)
        run = await request.app[SERVICE].create(
            slot,
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


async def _final_output(request: web.Request, run: ActiveRun) -> Any:
    """The body of ``wait``/``join``: the run's output once it ends, wherever it ends.

    A run handed over unfinished (this worker shut down, or lost its lease) ends on another
    worker; its outcome is then read from the store.
    """
    await run.done.wait()
    if run.outcome is not None:
        return run.outcome.output
    return await _remote_output(request, run.run_id)


async def _remote_output(request: web.Request, run_id: str) -> Any:
    """Poll the store until ``run_id`` (executed by another worker) ends; its output."""
    store, poll_s = request.app[STORE], request.app[SETTINGS].remote_poll_s
    while True:
        record = await store.get_run(run_id)
        if record is None:
            raise NotFound(f"run {run_id} was deleted", code="run_not_found")
        if record.status not in ACTIVE_RUN_STATES:
            return record.result
        await asyncio.sleep(poll_s)


async def _answer_when_done(
    request: web.Request,
    output: Coroutine[Any, Any, Any],
    headers: dict[str, str],
    on_disconnect: Callable[[], None] | None = None,
) -> web.StreamResponse:
    """Hold the response until ``output`` is ready, writing a blank line every heartbeat.

    JSON allows leading whitespace, so the blanks keep proxies from timing the wait out
    without changing what the SDK decodes. An output ready within the first heartbeat (most
    runs) is answered in one piece, with a length: one write instead of a chunked stream.
    """
    keepalive_interval_s = request.app[SETTINGS].keepalive_interval_s
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", **headers}
    )
    waiter = asyncio.ensure_future(output)
    try:
        done, _ = await asyncio.wait((waiter,), timeout=keepalive_interval_s)
        if done:
            return web.Response(
                body=jsonutil.dumps(waiter.result()),
                headers={"Content-Type": "application/json", **headers},
            )
        await response.prepare(request)
        while not waiter.done():
            done, _ = await asyncio.wait((waiter,), timeout=keepalive_interval_s)
            if not done:
                await response.write(b"\n")
        await response.write(jsonutil.dumps(waiter.result()))
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError) as exc:
        if on_disconnect is not None and not waiter.done():
            on_disconnect()
        if isinstance(exc, asyncio.CancelledError):
            raise
        log.info("wait_client_left")  # nobody to answer: a client leaving is not an error
    finally:
        if not waiter.done():
            waiter.cancel()
    return response


def _canceller(request: web.Request, run: ActiveRun, cancel: bool) -> Callable[[], None] | None:
    if not cancel:
        return None

    def stop() -> None:
        if not run.done.is_set():
            log.info("client_left_run_cancelled", run_id=run.run_id)
            request.app[MANAGER].stop(run.run_id, "interrupt")

    return stop


async def wait_run(request: web.Request) -> web.StreamResponse:
    run, body = await _create(request)
    cancel = (body.on_disconnect or "cancel") == "cancel"
    return await _answer_when_done(
        request,
        _final_output(request, run),
        _headers(run, "/join"),
        _canceller(request, run, cancel),
    )


async def stream_run(request: web.Request) -> web.StreamResponse:
    run, body = await _create(request)
    default = "continue" if body.stream_resumable else "cancel"
    cancel = (body.on_disconnect or default) == "cancel"
    response = await sse.open_stream(request, _headers(run, "/stream"))
    try:
        await sse.send_metadata(response, run.run_id, run.record.attempt)
        await sse.pump(
            response,
            run.events,
            after_seq=-1,
            keepalive_interval_s=request.app[SETTINGS].keepalive_interval_s,
        )
    except (ConnectionError, asyncio.CancelledError) as exc:
        _client_left(request, run, cancel)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return response  # nobody to answer: a client leaving is not an error
    await response.write_eof()
    return response


def _client_left(request: web.Request, run: ActiveRun, cancel: bool) -> None:
    """A stream's client went away: the run is cancelled when it asked for that."""
    if cancel and not run.done.is_set():
        log.info("stream_client_left_run_cancelled", run_id=run.run_id)
        request.app[MANAGER].stop(run.run_id, "interrupt")
    else:
        log.info("stream_client_left", run_id=run.run_id)


async def _record(request: web.Request) -> RunRecord:
    thread_id, run_id = request.match_info["thread_id"], request.match_info["run_id"]
    record = await request.app[STORE].get_run(run_id)
    if record is None or record.thread_id != thread_id:
        raise NotFound(f"run {run_id} not found on thread {thread_id}", code="run_not_found")
    return record


def _local(request: web.Request, record: RunRecord) -> ActiveRun | None:
    """The run if this worker executes it (or still retains its events)."""
    return request.app[MANAGER].get(record.run_id)


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
    """Stop the run wherever it executes; it reads ``interrupted`` before this answers."""
    record = await _record(request)
    action = request.query.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        raise Unprocessable(f"unknown action {action!r}", code="invalid_request")
    wait = request.query.get("wait", "0").lower() in ("1", "true")
    stop_action: CancelAction = "rollback" if action == "rollback" else "interrupt"
    try:
        # With wait, the answer follows the run's end, and an early mark would hide that end
        # from _remote_output.
        run = await canceller(request).cancel(record, stop_action, mark=not wait)
    except RunNotActiveError:
        # 404 as from the official server, whose cancel finds no active run by that id.
        raise NotFound(f"run {record.run_id} has already ended", code="run_not_active") from None
    if not wait:
        return web.Response(status=202)
    path = run_path(record.thread_id, record.run_id)
    output = _final_output(request, run) if run else _remote_output(request, record.run_id)
    return await _answer_when_done(request, output, {"Location": path + "/join"})


async def join_run(request: web.Request) -> web.StreamResponse:
    record = await _record(request)
    run = _local(request, record)
    path = run_path(record.thread_id, record.run_id)
    if run is not None:
        output = _final_output(request, run)
    elif record.status in ACTIVE_RUN_STATES:
        output = _remote_output(request, record.run_id)  # executed by another worker
    else:
        return json_response(record.result)
    return await _answer_when_done(request, output, {"Location": path + "/join"})


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
    relay = request.app[RELAY]
    if run is None and record.status in ACTIVE_RUN_STATES and not relay.enabled:
        raise held_elsewhere(record)
    response = await sse.open_stream(
        request, {"Location": run_path(record.thread_id, record.run_id) + "/stream"}
    )
    after = sse.parse_last_event_id(request.headers.get("Last-Event-ID"))
    # As the official server's, a join stream from the start begins with the run's metadata
    # (the JS client waits for it); one resumed after Last-Event-ID does not repeat it.
    keepalive_interval_s = request.app[SETTINGS].keepalive_interval_s
    if run is None:
        if after < 0:
            await sse.send_metadata(response, record.run_id, record.attempt)
        if relay.enabled:
            # Executed (or ended) on another worker: its events come through the relay
            # while that worker holds them (a finished run's, for its stream retention).
            def current() -> Awaitable[RunRecord | None]:
                return request.app[STORE].get_run(record.run_id)

            await sse.pump_remote(
                response, relay, record, after, keepalive_interval_s, current, modes
            )
        # Otherwise ended and no longer retained here: the SDK reads the run's status.
        await response.write_eof()
        return response
    try:
        if after < 0:
            await sse.send_metadata(response, run.run_id, run.record.attempt)
        await sse.pump(
            response,
            run.events,
            after_seq=after,
            keepalive_interval_s=keepalive_interval_s,
            modes=modes,
        )
    except (ConnectionError, asyncio.CancelledError) as exc:
        _client_left(request, run, cancel)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return response
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
