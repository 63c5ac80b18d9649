"""One store method at a time on the SQLite records connection.

aiosqlite runs one statement at a time, but the statements of two store methods interleave
at every ``await``. On a shared connection that goes wrong in two ways:

- a write that begins while another method's read statement is still open fails at once
  with "database is locked": the open statement pins an older WAL snapshot, SQLite cannot
  upgrade it to a write transaction, and the busy timeout does not apply;
- one method's ``commit()`` commits another method's half-done transaction.

Every store method that touches the records connection holds the connection's ``Serial``
lock across all of its statements (``@serial``). A store method called from one that holds
it, directly or through ``@shielded`` (whose task inherits the caller's context), goes
straight in. A method that fails inside a transaction rolls it back before letting go, so
the next one never inherits it. (Simple reads made outside any store method go to the
store's reader connections instead, beside everything else: ``SqliteStore._select``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import aiosqlite

P = ParamSpec("P")
T = TypeVar("T")

# The Serial locks the current task (and the tasks it awaits) holds.
_HELD: ContextVar[frozenset[int]] = ContextVar("gf_sqlite_serial_held", default=frozenset())


class Serial:
    """The lock of one records connection (see the module's docstring)."""

    def __init__(self, conn: Callable[[], aiosqlite.Connection]) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    def holding(self) -> bool:
        """Whether the current task (or one it awaits) holds this lock: it is inside a store
        method, whose reads must see its own transaction on the records connection."""
        return id(self) in _HELD.get()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        held = _HELD.get()
        if id(self) in held:
            yield
            return
        async with self._lock:
            token = _HELD.set(held | {id(self)})
            try:
                yield
            except BaseException:
                conn = self._conn()
                if conn.in_transaction:
                    await asyncio.shield(conn.rollback())
                raise
            finally:
                _HELD.reset(token)


class _HasSerial(Protocol):
    @property
    def _serial(self) -> Serial: ...


S = TypeVar("S", bound=_HasSerial)


def serial(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run a store method holding its records connection's ``Serial`` lock."""

    @functools.wraps(method)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._serial.held():
            return await method(self, *args, **kwargs)

    return wrapper
