"""SQLite connections that each live on a thread of their own, read concurrently and write
together.

``ThreadConnection.run(fn)`` runs ``fn(connection)`` -- any number of statements -- on the
connection's thread in one hop of the event loop (aiosqlite hops once per statement, fetch
and cursor close). A function is never cut in the middle: a caller that is cancelled stops
waiting, but the function still runs to its end, so a transaction it opens is always
committed or rolled back by the function itself, never left holding the file's write lock.

``ReaderPool``: a few read-only connections; a read takes whichever is idle, so reads run at
the same time as each other and as a write (WAL: readers never wait for the writer).

``Writer``: the one connection of a process that writes the hot path (run records, LangGraph
checkpoints). Writes that arrive while a transaction is being written wait, and are then
committed together in the next one (group commit), each inside its own savepoint so that one
failing rolls back only itself. Every ``write()`` returns once its transaction is committed,
so durability per call is what it would be alone; under load, many calls share one commit
and one acquisition of the file's write lock. Across processes, SQLite's write lock and the
busy timeout serialise the writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
Trace = Callable[[str], None]  # called with each statement a connection runs
Op = Callable[[sqlite3.Connection], Any]

BUSY_TIMEOUT_MS = 10_000


def connect(
    path: str, *, synchronous: str, read_only: bool = False, trace: Trace | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun explicitly), WAL, with the
    busy timeout and ``synchronous`` (``NORMAL`` or ``FULL``) set; blocking."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Per connection, not stored in the file: every connection sets it.
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        if read_only:
            conn.execute("PRAGMA query_only = 1")
        if trace is not None:
            conn.set_trace_callback(trace)
    except BaseException:
        conn.close()
        raise
    return conn


class ThreadConnection:
    """A sqlite3 connection used only from one thread of its own (see the module).

    Calls queue up for the thread, which runs them one at a time and hands each result back
    to the caller's event loop: one wake-up of the loop per call.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(cls, connector: Callable[[], sqlite3.Connection], name: str) -> ThreadConnection:
        """Open the connection ``connector`` makes, on a new thread called ``name``."""
        made = cls(name)
        made._thread.start()
        try:
            made._conn = await made._call(lambda _: connector())
        except BaseException:
            made._calls.put(None)
            raise
        return made

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            call.run(self._conn)

    def _call(self, fn: Callable[[Any], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Call(fn, loop, future))
        return future

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the connection's thread; see the module for cancellation."""
        if self._closed:
            raise RuntimeError("connection is closed")
        return await self._call(fn)

    async def close(self) -> None:
        """Close once every call queued before has run; the thread ends."""
        if self._closed:
            return
        self._closed = True
        closed = self._call(lambda conn: conn.close())
        self._calls.put(None)
        await closed


class _Call:
    """One queued call: runs on the connection's thread, answers on the caller's loop."""

    __slots__ = ("fn", "future", "loop")

    def __init__(
        self, fn: Callable[[Any], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future

    def run(self, conn: sqlite3.Connection | None) -> None:
        try:
            result = self.fn(conn)
        except BaseException as exc:
            self._answer(_fail, exc)
        else:
            self._answer(_succeed, result)

    def _answer(self, settle: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self.loop.call_soon_threadsafe(settle, self.future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # a cancelled caller stopped waiting
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class ReaderPool:
    """Read-only connections; ``run(fn)`` on an idle one (waiting for one if none is)."""

    def __init__(self, connections: Sequence[ThreadConnection]) -> None:
        self._all = list(connections)
        self._idle: asyncio.Queue[ThreadConnection] = asyncio.Queue()
        for conn in self._all:
            self._idle.put_nowait(conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = await self._idle.get()
        try:
            return await conn.run(fn)
        finally:
            # Back at once even if the caller was cancelled: a function still running on
            # the connection's thread only delays the next one queued there.
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()


class _Batch:
    """What one transaction of the writer ran: each op's result or exception, in order."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = ops
        self.outcomes: list[tuple[bool, Any]] = []

    def __call__(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if len(self.ops) == 1:
                self.outcomes.append((True, self.ops[0](conn)))
            else:
                for op in self.ops:
                    self.outcomes.append(_in_savepoint(conn, op))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _in_savepoint(conn: sqlite3.Connection, op: Op) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT gf_op")
    try:
        result = op(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO gf_op")
        conn.execute("RELEASE gf_op")
        return False, exc
    conn.execute("RELEASE gf_op")
    return True, result


class Writer:
    """Group commit on one connection (see the module). ``close()`` finishes what is queued."""

    def __init__(self, conn: ThreadConnection) -> None:
        self._conn = conn
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connection(self) -> ThreadConnection:
        return self._conn

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op(connection)`` inside a write transaction; returns once it is committed.

        ``op`` runs on the connection's thread: it must only execute statements (no
        ``commit``, no ``BEGIN``) and raise to undo its own statements. It runs even if the
        caller is cancelled meanwhile.
        """
        if self._closed:
            raise RuntimeError("store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="sqlite-writer")
        # Shielded: a cancelled caller leaves the future for the flusher to settle.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._queue:
                queued, self._queue = self._queue, []
                batch = _Batch([op for op, _ in queued])
                try:
                    # Shielded: the batch runs to its end on the thread whatever happens
                    # here, and its callers must hear how it ended.
                    await asyncio.shield(self._conn.run(batch))
                except asyncio.CancelledError:
                    # The loop is going away (the batch may still commit on its thread): every
                    # caller hears it, those queued behind the batch too, so none waits forever.
                    closing = RuntimeError("store closed while writing; outcome unknown")
                    _settle(queued, [], closing)
                    _settle(self._queue, [], RuntimeError("store closed before writing"))
                    self._queue = []
                    raise
                except Exception as exc:
                    _settle(queued, batch.outcomes, exc)
                else:
                    _settle(queued, batch.outcomes, None)
        finally:
            self._flushing = None

    async def close(self) -> None:
        """Refuse new writes and wait for the queued ones to be committed."""
        self._closed = True
        flushing = self._flushing
        if flushing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(flushing)
        await self._conn.close()


def _settle(
    queued: Sequence[tuple[Op, asyncio.Future[Any]]],
    outcomes: Sequence[tuple[bool, Any]],
    failure: BaseException | None,
) -> None:
    """Resolve each caller's future: its op's outcome, or the transaction's failure (a
    transaction that did not commit undid every op in it, even those that succeeded)."""
    for i, (_, future) in enumerate(queued):
        if future.done():
            continue
        if failure is not None:
            future.set_exception(failure)
        elif outcomes[i][0]:
            future.set_result(outcomes[i][1])
        else:
            future.set_exception(outcomes[i][1])


def connector(
    path: str, *, synchronous: str, read_only: bool = False, trace: Trace | None = None
) -> Callable[[], sqlite3.Connection]:
    """``connect`` with these arguments, for ``ThreadConnection.open``."""
    return functools.partial(
        connect, path, synchronous=synchronous, read_only=read_only, trace=trace
    )
