"""Runs across workers: their live events, commands to the worker executing them, a cache.

``Relay`` is the interface and the single-worker default (it relays nothing).
``RedisRelay`` (``WORKER_REDIS_URL``) keeps, per run, a Redis Stream of its events (entry id
``{seq}-1``, so ``Last-Event-ID`` maps to a stream position; ``MAXLEN`` and ``EXPIRE`` bound
it) closed by an ``__end__`` entry; a pub/sub channel per worker for commands (cancel,
rollback, pause, relay) on the runs it executes; and a copy of each execution record with a
TTL.

A run's events are relayed on demand: a worker asked to stream a run another worker
executes sends that worker the ``relay`` command, and from then on the executing worker
writes the run's events (those it still holds first) to the run's stream. Runs nobody
follows elsewhere (most) cost Redis nothing; a run made with ``stream_resumable`` is relayed
from its start, so its stream outlives its worker. An attempt's end entry has the id just
below the next attempt's first event, so a stream read from an attempt's first id on never
sees an earlier attempt's events or end.

Publishing never blocks a run and never fails one: writes go through a bounded queue to one
background task. While Redis is unreachable, writes are dropped with a logged warning and
the worker serves its own runs' streams from memory, as without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from worker.runs.events import StreamEvent, first_seq

log = structlog.get_logger("worker.relay")

END = "__end__"
RELAY_COMMAND = "relay"  # to a run's worker: write the run's events to its stream from now on
CommandHandler = Callable[[str, str], bool]  # (run_id, action) -> applied


class Relay:
    """A run's events beyond this worker's memory; this base relays nothing."""

    enabled = False

    def publish(self, run_id: str, event: StreamEvent) -> None:
        """Relay one event of a run this worker executes (never blocks)."""

    def end(self, run_id: str, attempt: int) -> None:
        """The run's ``attempt`` ended: followers elsewhere stop after its last event."""

    def reset(self, run_id: str) -> None:
        """Relaying an execution of ``run_id`` begins: forget the events of earlier ones."""

    def cache_execution(self, run_id: str, view: dict[str, Any]) -> None:
        """Keep a copy of an execution record (``GET /executions/{id}``'s body)."""

    def follow(
        self, run_id: str, after_seq: int, *, idle_s: float
    ) -> AsyncIterator[StreamEvent | None]:
        """Events of a run executed elsewhere after ``after_seq``, until it ends; ``None``
        after each ``idle_s`` without one. Raises ``RedisError`` when that fails."""
        raise RuntimeError("no relay configured")

    async def send_command(self, worker_id: str, run_id: str, action: str) -> bool:
        """Ask ``worker_id`` to apply ``action`` to ``run_id``; True if a worker heard it."""
        return False

    async def start(self, on_command: CommandHandler) -> None: ...

    async def close(self) -> None: ...


class RedisRelay(Relay):
    """The relay over Redis; see the module docstring. ``start()``, then ``close()``."""

    enabled = True

    def __init__(
        self,
        url: str,
        *,
        worker_id: str,
        prefix: str,
        max_events: int,
        stream_ttl_s: float,
        result_ttl_s: float,
        queue_size: int = 100_000,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=10
        )
        self._worker_id = worker_id
        self._prefix = prefix
        self._max_events = max_events
        self._stream_ttl_s = max(1, int(stream_ttl_s))
        self._result_ttl_s = max(1, int(result_ttl_s))
        self._queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._healthy = True
        self.dropped = 0

    def _events_key(self, run_id: str) -> str:
        return f"{self._prefix}run:{run_id}:events"

    def _channel(self, worker_id: str) -> str:
        return f"{self._prefix}worker:{worker_id}:commands"

    # writes: queued, applied in order by one task

    def _put(self, op: str, key: str, value: Any) -> None:
        try:
            self._queue.put_nowait((op, key, value))
        except asyncio.QueueFull:
            self.dropped += 1

    def publish(self, run_id: str, event: StreamEvent) -> None:
        self._put("event", self._events_key(run_id), event)

    def end(self, run_id: str, attempt: int) -> None:
        self._put("end", self._events_key(run_id), first_seq(attempt + 1) - 1)

    def reset(self, run_id: str) -> None:
        self._put("delete", self._events_key(run_id), None)

    def cache_execution(self, run_id: str, view: dict[str, Any]) -> None:
        self._put("cache", f"{self._prefix}execution:{run_id}", orjson.dumps(view))

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            pipe = self._redis.pipeline(transaction=False)
            # One EXPIRE per stream per batch, after all of the batch's writes (a stream
            # deleted and written again within the batch gets its TTL too): a run's events
            # come in bursts, and an EXPIRE per event was half of the commands sent.
            appended: dict[str, None] = {}
            for op, key, value in batch:
                if op == "event":
                    event: StreamEvent = value
                    fields: dict[Any, Any] = {"name": event.name, "data": event.data}
                    pipe.xadd(key, fields, id=f"{event.seq}-1", maxlen=self._max_events)
                    appended[key] = None
                elif op == "end":
                    pipe.xadd(key, {"name": END, "data": b"null"}, id=f"{value}-1")
                    appended[key] = None
                elif op == "delete":
                    pipe.delete(key)
                else:
                    pipe.set(key, value, ex=self._result_ttl_s)
            for key in appended:
                pipe.expire(key, self._stream_ttl_s)
            try:
                await pipe.execute(raise_on_error=False)
                self._up()
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)
                self._down(exc)
                await asyncio.sleep(1.0)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _up(self) -> None:
        if not self._healthy:
            log.warning("redis_reachable", relaying=True)
        self._healthy = True

    def _down(self, exc: BaseException) -> None:
        if self._healthy:
            # Streams of this worker's runs are then served from its memory only, and
            # commands from other workers do not reach it.
            log.warning("redis_unreachable", relaying=False, error=str(exc))
        self._healthy = False

    # reads

    async def follow(
        self, run_id: str, after_seq: int, *, idle_s: float
    ) -> AsyncIterator[StreamEvent | None]:
        key = self._events_key(run_id)
        last = f"{after_seq}-1" if after_seq >= 0 else "0-0"
        while True:
            reply: Any = await self._redis.xread({key: last}, count=500, block=int(idle_s * 1000))
            if not reply:
                yield None
                continue
            for entry_id, fields in reply[0][1]:
                last = entry_id.decode()
                name = fields[b"name"].decode()
                if name == END:
                    return
                yield StreamEvent(int(last.split("-", 1)[0]), name, bytes(fields[b"data"]))

    # commands

    async def send_command(self, worker_id: str, run_id: str, action: str) -> bool:
        message = orjson.dumps({"run_id": run_id, "action": action})
        try:
            return bool(await self._redis.publish(self._channel(worker_id), message))
        except (RedisError, OSError) as exc:
            self._down(exc)
            return False

    async def _listen(self, on_command: CommandHandler) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel(self._worker_id))
                    self._up()
                    async for message in pubsub.listen():
                        self._apply(on_command, message.get("data"))
            except (RedisError, OSError) as exc:
                self._down(exc)
                await asyncio.sleep(1.0)

    @staticmethod
    def _apply(on_command: CommandHandler, data: Any) -> None:
        try:
            command = orjson.loads(data)
            on_command(str(command["run_id"]), str(command["action"]))
        except Exception:
            log.exception("relay_command_invalid", data=repr(data)[:200])

    # lifecycle

    async def start(self, on_command: CommandHandler) -> None:
        self._tasks = [
            asyncio.create_task(self._writer(), name="relay-writer"),
            asyncio.create_task(self._listen(on_command), name="relay-listener"),
        ]

    async def close(self, drain_timeout_s: float = 2.0) -> None:
        # Let queued writes (a run's last events, its end) out first, briefly.
        if self._healthy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_timeout_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._redis.aclose()
