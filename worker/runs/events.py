"""Event fan-out: a run's replayable event log, and the live feed of a graph's runs.

``RunEvents.publish`` never awaits, so the executor can emit from anywhere without yielding
to the loop between two bookkeeping steps. Readers ``follow()`` the log from a sequence
number: that is both how a stream response sees every event from the first one on and how
a reconnecting client resumes after its ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from worker import jsonutil

# Each attempt of a run numbers its events from its own base, above every earlier attempt's.
ATTEMPT_SEQ_STRIDE = 1_000_000_000


def first_seq(attempt: int) -> int:
    """The first event sequence number of a run's ``attempt`` (1-based)."""
    return (attempt - 1) * ATTEMPT_SEQ_STRIDE


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE event; ``data`` is encoded once, however many readers send it."""

    seq: int
    name: str
    data: bytes

    @property
    def mode(self) -> str:
        """The stream mode part of the name (``updates|child:1`` → ``updates``)."""
        return self.name.split("|", 1)[0].split("/", 1)[0]


class RunEvents:
    """The events of one run: bounded, replayable, closed when the run ends.

    Sequence numbers start at ``first_seq``: a run resumed on another worker numbers its
    events after those of its earlier attempts, so a ``Last-Event-ID`` stays meaningful.
    Once ``relay_to(sink)`` is called, ``sink`` sees every event, those retained first (the
    cross-worker relay, for a reader on another worker); it must not block.
    """

    def __init__(self, max_events: int, *, first_seq: int = 0) -> None:
        self._events: deque[StreamEvent] = deque(maxlen=max_events)
        self._next_seq = first_seq
        self._on_publish: Callable[[StreamEvent], None] | None = None
        self._closed = False
        self._wakeup: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def relayed(self) -> bool:
        """Whether a sink sees this run's events (``relay_to``)."""
        return self._on_publish is not None

    def relay_to(self, sink: Callable[[StreamEvent], None]) -> bool:
        """From now on, hand every event to ``sink``, after the retained ones in order; False
        (and nothing done) when a sink already has them."""
        if self._on_publish is not None:
            return False
        self._on_publish = sink
        for event in list(self._events):
            sink(event)
        return True

    def publish(self, name: str, data: Any) -> StreamEvent:
        if self._closed:
            raise RuntimeError("event log is closed")
        event = StreamEvent(self._next_seq, name, jsonutil.dumps(data))
        self._next_seq += 1
        self._events.append(event)
        self._wake()
        if self._on_publish is not None:
            self._on_publish(event)
        return event

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        self._wakeup = None

    def retained(self, after_seq: int = -1) -> list[StreamEvent]:
        """The events still held with ``seq > after_seq``, in order (a snapshot)."""
        return list(self._after(after_seq))

    def _after(self, seq: int) -> Iterator[StreamEvent]:
        # Events are in seq order; skip what the reader has seen.
        return (e for e in list(self._events) if e.seq > seq)

    async def follow(
        self, after_seq: int = -1, *, idle_s: float | None = None
    ) -> AsyncIterator[StreamEvent | None]:
        """Every retained event with ``seq > after_seq``, then new ones until ``close()``.

        With ``idle_s``, yields ``None`` after each ``idle_s`` without an event (the
        caller's cue for a heartbeat).
        """
        last = after_seq
        while True:
            for event in self._after(last):
                last = event.seq
                yield event
            if self._closed:
                return
            if self._wakeup is None:
                self._wakeup = asyncio.get_running_loop().create_future()
            # asyncio.wait neither cancels the shared future on timeout nor when this
            # reader is cancelled, so other readers keep waiting on it.
            done, _ = await asyncio.wait((self._wakeup,), timeout=idle_s)
            if not done:
                yield None


class GraphFeed:
    """Live messages per graph for WebSocket subscribers; slow readers lose messages.

    Each subscriber has a bounded queue; a full queue drops the message for that subscriber
    only (and counts it), so one stuck socket never slows a run.
    """

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.dropped = 0

    def has_subscribers(self, graph_id: str) -> bool:
        return bool(self._subscribers.get(graph_id))

    def publish(self, graph_id: str, payload: dict[str, Any]) -> None:
        for queue in self._subscribers.get(graph_id, ()):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:
                self.dropped += 1

    @contextlib.contextmanager
    def subscribe(self, graph_id: str) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.setdefault(graph_id, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(graph_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[graph_id]
