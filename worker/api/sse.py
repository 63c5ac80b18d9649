"""Server-sent events exactly as the LangGraph SDK parses them.

``event: NAME\\r\\ndata: JSON\\r\\nid: SEQ\\r\\n\\r\\n``; a ``: heartbeat`` comment when the run is
quiet, so proxies keep the connection and a dead client is noticed. Every event carries its
id (the run's sequence number): a client reconnecting with ``Last-Event-ID`` resumes right
after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from worker import jsonutil
from worker.runs.events import RunEvents, StreamEvent, first_seq
from worker.runs.relay import RELAY_COMMAND, Relay
from worker.store.base import ACTIVE_RUN_STATES, RunRecord

log = structlog.get_logger("worker.api.sse")

HEARTBEAT = b": heartbeat\r\n\r\n"


def frame(name: str, data: bytes, event_id: str | None = None) -> bytes:
    out = b"event: " + name.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        out += b"id: " + event_id.encode() + b"\r\n"
    return out + b"\r\n"


async def open_stream(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # proxies must pass events as they come
            **headers,
        },
    )
    await response.prepare(request)
    return response


def parse_last_event_id(value: str | None) -> int:
    """The sequence number to resume after; -1 (from the start) when absent or foreign."""
    try:
        return int(value) if value else -1
    except ValueError:
        return -1


def wanted(event: StreamEvent, modes: Collection[str] | None) -> bool:
    """Whether a join_stream asking for ``modes`` gets ``event`` (errors always pass)."""
    if not modes or event.name in ("error", "end"):
        return True
    return event.mode in modes


async def send_metadata(response: web.StreamResponse, run_id: str, attempt: int = 1) -> None:
    payload = {"run_id": run_id, "attempt": attempt}
    await response.write(frame("metadata", jsonutil.dumps(payload)))


async def pump(
    response: web.StreamResponse,
    events: RunEvents,
    *,
    after_seq: int,
    keepalive_interval_s: float,
    modes: Collection[str] | None = None,
) -> None:
    """Write the run's events until it ends. Raises ``ConnectionError`` if the client left."""
    async for event in events.follow(after_seq, idle_s=keepalive_interval_s):
        if event is None:
            await response.write(HEARTBEAT)
        elif wanted(event, modes):
            await response.write(frame(event.name, event.data, str(event.seq)))


async def pump_remote(
    response: web.StreamResponse,
    relay: Relay,
    record: RunRecord,
    after_seq: int,
    keepalive_interval_s: float,
    current: Callable[[], Awaitable[RunRecord | None]],
    modes: Collection[str] | None = None,
) -> None:
    """Write the events of a run another worker executes (``record``), from the relay, until
    it ends; ``current()`` reads the run's record again.

    The worker holding the run is asked to relay it (it writes the run's events to Redis
    only for such a reader); asked again at each quiet spell while the run is active, and
    a worker that took the run over (a crash, a hand-back) is asked too, even if the run
    has ended there since. Events of earlier attempts are skipped. The stream ends at the
    run's end entry, or when a quiet spell finds the run ended on the worker last asked (its
    end entry was lost, or that worker no longer holds its events). If the relay fails, the
    stream just ends: the SDK then reads the run and reconnects with its ``Last-Event-ID``
    while the run is still going.
    """
    run_id = record.run_id
    after_seq = max(after_seq, first_seq(record.attempt) - 1)
    asked = (record.worker_id, record.attempt)
    try:
        await relay.send_command(record.worker_id, run_id, RELAY_COMMAND)
        async for event in relay.follow(run_id, after_seq, idle_s=keepalive_interval_s):
            if event is None:
                now = await current()
                if now is None:
                    return
                holder = (now.worker_id, now.attempt)
                if holder == asked and now.status not in ACTIVE_RUN_STATES:
                    return
                # Another attempt (which may have ended already) is relayed by its worker.
                asked = holder
                await relay.send_command(now.worker_id, run_id, RELAY_COMMAND)
                await response.write(HEARTBEAT)
            elif wanted(event, modes):
                await response.write(frame(event.name, event.data, str(event.seq)))
    except RedisError as exc:
        log.warning("relay_follow_failed", run_id=run_id, error=str(exc))
