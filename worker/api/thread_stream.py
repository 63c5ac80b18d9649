"""``GET /threads/{thread_id}/stream``: every run on the thread, live (see
``runs.thread_follow``), as server-sent events; ``Last-Event-ID`` resumes.

``stream_modes`` (one, several, or comma-separated): ``run_modes`` (every event, the
default), ``lifecycle`` (only each run's start and done metadata), ``state_update`` (state
updates: none are published here, so alone it streams only heartbeats).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from worker.api import sse
from worker.errors import Unprocessable
from worker.keys import MANAGER, SERVICE, SETTINGS, STORE
from worker.runs.thread_follow import Cursor, ThreadFollower

log = structlog.get_logger("worker.api.thread_stream")

THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")
_POLL_S = 0.05


def _modes(request: web.Request) -> set[str]:
    modes = {
        mode.strip()
        for value in request.query.getall("stream_modes", [])
        for mode in value.split(",")
        if mode.strip()
    }
    unknown = sorted(modes - set(THREAD_STREAM_MODES))
    if unknown:
        raise Unprocessable(f"invalid stream mode: {', '.join(unknown)}", code="invalid_request")
    return modes or {"run_modes"}


async def join_thread_stream(request: web.Request) -> web.StreamResponse:
    thread = await request.app[SERVICE].thread(request.match_info["thread_id"])
    modes = _modes(request)
    cursor = Cursor.parse(request.headers.get("Last-Event-ID"))
    keepalive_interval_s = request.app[SETTINGS].keepalive_interval_s
    follower = ThreadFollower(
        request.app[MANAGER],
        request.app[STORE],
        thread.thread_id,
        idle_s=keepalive_interval_s,
        poll_s=min(_POLL_S, keepalive_interval_s),
    )
    response = await sse.open_stream(request, {})
    try:
        async for event in follower.events(cursor):
            if event is None:
                await response.write(sse.HEARTBEAT)
            elif "run_modes" in modes or (event.lifecycle and "lifecycle" in modes):
                await response.write(sse.frame(event.name, event.data, event.event_id))
    except ConnectionError:
        log.info("thread_stream_client_left", thread_id=thread.thread_id)
    except asyncio.CancelledError:
        log.info("thread_stream_client_left", thread_id=thread.thread_id)
        raise
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/threads/{thread_id}/stream", join_thread_stream)
