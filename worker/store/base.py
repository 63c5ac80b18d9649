"""The store interface: assistants, threads, runs and LangGraph checkpoints.

The worker's own records live here beside the checkpointer that holds graph state, so one
URL (``WORKER_STORE``) says where everything of a fleet is. SQLite is the default; the next
backend (Postgres) implements the same interface.

Records are immutable snapshots; writers pass the new values and read back if they need to.
Times are timezone-aware UTC ``datetime``s.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

# A run's status as this worker tracks it. The LangGraph API reports cancelled and paused
# runs as "interrupted"; the simple API tells them apart (see runs.model).
RunState = Literal[
    "pending", "running", "success", "error", "timeout", "interrupted", "cancelled", "paused"
]
ACTIVE_RUN_STATES: tuple[RunState, ...] = ("pending", "running")
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
SortOrder = Literal["asc", "desc"]


class ThreadExistsError(Exception):
    """``create_thread`` was asked for an id that exists."""


@dataclass(frozen=True, slots=True)
class AssistantRecord:
    assistant_id: str
    graph_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    thread_id: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatus


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as persisted: what was asked (``kwargs``) and how it ended (``result``/``error``).

    ``result`` is the body ``runs.wait``/``join`` answer with once the run has ended.
    ``worker_id`` names the worker that holds (executes) the run.
    """

    run_id: str
    thread_id: str
    assistant_id: str
    graph_id: str
    status: RunState
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    multitask_strategy: str
    kwargs: dict[str, Any]
    worker_id: str
    result: Any = None
    error: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    metadata: Mapping[str, Any] | None = None
    ids: Sequence[str] | None = None
    status: ThreadStatus | None = None
    limit: int = 10
    offset: int = 0
    sort_by: Literal["thread_id", "created_at", "updated_at", "status"] = "created_at"
    sort_order: SortOrder = "desc"


class Store(abc.ABC):
    """Persistence of one worker; safe to share between the worker processes of a machine.

    Open with ``open()`` and always ``close()``; ``checkpointer`` is valid in between.
    """

    @property
    @abc.abstractmethod
    def checkpointer(self) -> BaseCheckpointSaver[Any]: ...

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # assistants
    @abc.abstractmethod
    async def ensure_assistant(self, assistant_id: str, graph_id: str) -> AssistantRecord: ...

    # threads
    @abc.abstractmethod
    async def create_thread(self, thread_id: str, metadata: Mapping[str, Any]) -> ThreadRecord:
        """Insert a thread; raises ``ThreadExistsError`` when the id is taken."""

    @abc.abstractmethod
    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    @abc.abstractmethod
    async def update_thread(
        self,
        thread_id: str,
        *,
        status: ThreadStatus | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the status and/or merge ``metadata`` into the thread's; bumps ``updated_at``."""

    @abc.abstractmethod
    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]: ...

    @abc.abstractmethod
    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its runs and its checkpoints; False when it did not exist."""

    # runs
    @abc.abstractmethod
    async def create_run(self, run: RunRecord) -> None:
        """Insert ``run``, or overwrite the record with the same ``run_id`` (a restart)."""

    @abc.abstractmethod
    async def set_run_status(
        self,
        run_id: str,
        status: RunState,
        *,
        result: Any = None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a status change; ``result``/``error`` are stored when given."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: RunState | None = None
    ) -> list[RunRecord]: ...

    @abc.abstractmethod
    async def delete_run(self, run_id: str) -> bool: ...

    @abc.abstractmethod
    async def active_runs_elsewhere(self, thread_id: str, worker_id: str) -> list[RunRecord]:
        """Pending or running runs of ``thread_id`` held by other workers."""

    @abc.abstractmethod
    async def fail_orphaned_runs(self, worker_id: str, message: str) -> int:
        """Mark runs a previous life of ``worker_id`` left active as errors; returns how many."""
