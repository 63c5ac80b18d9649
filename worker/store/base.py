"""The store interface: assistants, threads, runs and LangGraph checkpoints.

The worker's own records live here beside the checkpointer that holds graph state, so one
URL (``WORKER_STORE``) says where everything of a fleet is: SQLite (the default, shared by the
worker processes of one machine) or Postgres (shared by a fleet).

Leases: an active (pending or running) run is held by one worker (``worker_id``) until its
lease expires. The holder renews it (``renew_leases``); any worker may claim a run whose lease
has expired (``claim_expired_runs``), and the store guarantees that exactly one claimant gets
it. Each worker records the URL it can be reached at (``record_worker``), so a sweeper can
ask whether a holder is still there (``lease_holders``) rather than wait out its lease.
Lease times come from the store's clock, so workers never compare their own clocks.

Records are immutable snapshots; writers pass the new values and read back if they need to.
Times are timezone-aware UTC ``datetime``s.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver

from worker.store.crons import CronQuery, CronRecord
from worker.store.storage import ThreadStorage
from worker.store.thread_ttl import ThreadTTL
from worker.store.webhooks import WebhookEvent, WebhookStore

# A run's status as this worker tracks it. The LangGraph API reports cancelled and paused
# runs as "interrupted"; the simple API tells them apart (see runs.model).
RunState = Literal[
    "pending", "running", "success", "error", "timeout", "interrupted", "cancelled", "paused"
]
ACTIVE_RUN_STATES: tuple[RunState, ...] = ("pending", "running")
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
StopOnRecord = Literal["interrupt", "rollback"]  # what a cancel on a run's record asks for
# Called with the text of each SQL statement a store runs (diagnostics, tests).
SqlTrace = Callable[[str], None]
SortOrder = Literal["asc", "desc"]


def holds_lease(row: str = "") -> str:
    """SQL, for either store, of whether a run (``row``: its table alias and a dot, or nothing)
    holds a lease: while it is active, and once cancelled on record until its holder ends it
    (a lapsed lease then means that holder is gone, and the sweeper ends the run instead)."""
    active = ", ".join(f"'{state}'" for state in ACTIVE_RUN_STATES)
    return (
        f"({row}status IN ({active}) OR "
        f"({row}status = 'cancelled' AND {row}lease_expires_at IS NOT NULL))"
    )


P = ParamSpec("P")
S = TypeVar("S")
T = TypeVar("T")


def shielded(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run a store write to completion even if its caller is cancelled.

    A status write cut by a cancellation would leave the record behind the run (and on
    SQLite, a connection holding the file's write lock until its next commit). Writes
    still running are tracked on their object: ``close()`` waits for them
    (``finish_writes``) before closing connections under them.
    """

    @functools.wraps(method)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(method(self, *args, **kwargs))
        writes = _writes_in_flight(self)
        writes.add(task)
        task.add_done_callback(writes.discard)
        return await asyncio.shield(task)

    return wrapper


def _writes_in_flight(owner: object) -> set[asyncio.Future[Any]]:
    writes: set[asyncio.Future[Any]] | None = getattr(owner, "_gf_writes_in_flight", None)
    if writes is None:
        writes = set()
        owner._gf_writes_in_flight = writes  # type: ignore[attr-defined]
    return writes


async def finish_writes(owner: object, timeout_s: float = 10.0) -> None:
    """Wait (at most ``timeout_s``) for ``owner``'s shielded writes whose callers left."""
    writes = list(_writes_in_flight(owner))
    if writes:
        await asyncio.wait(writes, timeout=timeout_s)


class ThreadExistsError(Exception):
    """``create_thread`` was asked for an id that exists."""


class AssistantExistsError(Exception):
    """``create_assistant`` was asked for an id that exists."""


class AssistantChangedError(Exception):
    """``begin_run`` found the run's assistant changed (or gone) since it was read."""


@dataclass(frozen=True, slots=True)
class AssistantRecord:
    """An assistant: a graph with its own config, context, metadata and name.

    ``version`` names the row of ``AssistantVersion`` the assistant currently serves.
    """

    assistant_id: str
    graph_id: str
    created_at: datetime
    updated_at: datetime
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = "Untitled"
    description: str | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class AssistantVersion:
    """One saved version of an assistant: what a patch made (versions are never changed)."""

    assistant_id: str
    version: int
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    name: str
    description: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AssistantPatch:
    """The fields a patch sets; None leaves a field as it is (``metadata`` merges)."""

    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


AssistantSortField = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]


@dataclass(frozen=True, slots=True)
class AssistantQuery:
    """Filters of an assistant search or count: all given ones must match.

    ``name`` matches case-insensitively anywhere in the name; ``metadata`` keys must have
    the given values.
    """

    graph_id: str | None = None
    name: str | None = None
    metadata: Mapping[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    sort_by: AssistantSortField = "created_at"
    sort_order: SortOrder = "desc"


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """A thread as persisted; ``ttl`` and ``ttl_expires_at`` when it has a TTL (see
    ``worker.store.thread_ttl``; the expiry is None while disarmed)."""

    thread_id: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatus
    ttl: ThreadTTL | None = None
    ttl_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as persisted: what was asked (``kwargs``) and how it ended (``result``/``error``).

    ``result`` is the body ``runs.wait``/``join`` answer with once the run has ended.
    ``worker_id`` names the worker that holds (executes) the run, while its lease lasts
    (``lease_expires_at``; None once the run has ended). ``attempt`` counts executions:
    1, plus one for each time another worker claimed the run.
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
    attempt: int = 1
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """What one sweep of expired leases did: runs now held by the sweeper, runs given up."""

    claimed: list[RunRecord]
    abandoned: list[RunRecord]


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

    @property
    @abc.abstractmethod
    def webhooks(self) -> WebhookStore:
        """Hooks, the webhook outbox and delivery attempts (``worker.store.webhooks``)."""

    # assistants (implemented by ``sqlite_assistants`` / ``postgres_assistants``)
    @abc.abstractmethod
    async def create_assistant(
        self, assistant: AssistantRecord, *, if_exists: Literal["raise", "do_nothing"] = "raise"
    ) -> AssistantRecord:
        """Insert ``assistant`` and its version 1 together.

        When the id is taken: raises ``AssistantExistsError`` (``raise``) or returns the
        existing assistant unchanged (``do_nothing``).
        """

    @abc.abstractmethod
    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None: ...

    @abc.abstractmethod
    async def patch_assistant(
        self, assistant_id: str, patch: AssistantPatch
    ) -> AssistantRecord | None:
        """Save the patched assistant as a new version (``assistant_versions.apply_patch``)
        and make it the latest; None when the assistant does not exist."""

    @abc.abstractmethod
    async def delete_assistant(self, assistant_id: str) -> bool:
        """Delete the assistant and its versions; False when it did not exist."""

    @abc.abstractmethod
    async def search_assistants(self, query: AssistantQuery) -> list[AssistantRecord]: ...

    @abc.abstractmethod
    async def count_assistants(self, query: AssistantQuery) -> int:
        """How many assistants match the filters of ``query`` (its paging is ignored)."""

    @abc.abstractmethod
    async def list_assistant_versions(
        self,
        assistant_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[AssistantVersion]:
        """Versions of the assistant whose metadata has ``metadata``'s keys, newest first."""

    @abc.abstractmethod
    async def set_assistant_version(
        self, assistant_id: str, version: int
    ) -> AssistantRecord | None:
        """Make ``version`` the assistant's current one (its graph, config, context,
        metadata, name and description); None when the assistant or version is missing."""

    # threads
    @abc.abstractmethod
    async def create_thread(
        self, thread_id: str, metadata: Mapping[str, Any], *, ttl: ThreadTTL | None = None
    ) -> ThreadRecord:
        """Insert a thread with ``ttl`` (the store's default TTL when None: langgraph.json's
        ``checkpointer.ttl``); raises ``ThreadExistsError`` when the id is taken."""

    @abc.abstractmethod
    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    @abc.abstractmethod
    async def update_thread(
        self,
        thread_id: str,
        *,
        status: ThreadStatus | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: ThreadTTL | None = None,
    ) -> None:
        """Set the status, merge ``metadata`` into the thread's, set its TTL; bumps
        ``updated_at`` when any is given.

        Every call is activity on the thread: it re-arms the TTL's expiry (a call with no
        argument does only that), unless a sweeper holds the thread.
        """

    @abc.abstractmethod
    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]: ...

    @abc.abstractmethod
    async def delete_thread(
        self,
        thread_id: str,
        *,
        events: Sequence[WebhookEvent] = (),
        ttl_holder: str | None = None,
    ) -> bool:
        """Delete the thread, its runs, crons and checkpoints in one transaction; False when it
        did not exist.

        ``events`` go to the outbox in the same transaction when the thread existed (a
        stateless run's end: its temporary thread goes with the run's record). With
        ``ttl_holder``, only while that worker holds the thread's TTL claim (the sweeper's
        delete): False, and nothing deleted, otherwise.
        """

    @abc.abstractmethod
    async def thread_storage(self, thread_id: str) -> ThreadStorage:
        """The bytes the thread's checkpoints occupy in the checkpointer's tables."""

    # threads: TTL sweeping (see worker.store.thread_ttl for the claim protocol)
    @abc.abstractmethod
    async def claim_expired_threads(
        self, worker_id: str, *, now: datetime, claim_s: float, limit: int
    ) -> list[ThreadRecord]:
        """Hold up to ``limit`` threads whose TTL expired by ``now`` for ``worker_id`` until
        ``now + claim_s``, soonest expired first; exactly one caller gets each thread while
        its claim lasts. ``keep_latest`` threads with a run in progress are left alone."""

    @abc.abstractmethod
    async def finish_thread_ttl(self, thread_id: str, worker_id: str) -> bool:
        """Disarm the expiry of a thread ``worker_id`` holds (pruned) and drop the claim;
        False when the claim is no longer its own (nothing written)."""

    @abc.abstractmethod
    async def release_thread_ttl_claim(self, thread_id: str, worker_id: str) -> None:
        """Drop ``worker_id``'s claim; the thread stays expired, for the next sweep."""

    # threads: counting; runs by status (bulk cancel)
    @abc.abstractmethod
    async def count_threads(self, query: ThreadQuery) -> int:
        """How many threads match the filters of ``query`` (its paging and sort ignored)."""

    @abc.abstractmethod
    async def find_active_runs(self, statuses: Sequence[RunState]) -> list[RunRecord]:
        """Runs of any thread and any worker whose status is one of ``statuses``."""

    # runs
    @abc.abstractmethod
    async def create_run(self, run: RunRecord) -> None:
        """Insert ``run``, or overwrite the record with the same ``run_id`` (a restart)."""

    @abc.abstractmethod
    async def begin_run(
        self,
        run: RunRecord,
        *,
        thread_metadata: Mapping[str, Any],
        create_thread: bool = False,
        temporary_thread: bool = False,
        events: Sequence[WebhookEvent] = (),
        assistant: AssistantRecord | None = None,
    ) -> None:
        """A new run on record with its thread busy, in one transaction.

        Inserts ``run`` (or overwrites the record of its id: a restart) with its status as
        given -- ``running`` for a run that starts at once, with ``events`` (its start) for
        the outbox -- sets the thread's status to busy and merges ``thread_metadata`` into its
        metadata; this is activity on the thread, re-arming its TTL as ``update_thread``
        does. With ``create_thread`` a thread that does not exist is created with that
        metadata (a stateless run's thread; ``if_not_exists=create``) and the store's default
        TTL, as ``create_thread`` gives it -- unless ``temporary_thread``: the thread of a
        stateless run that deletes it when it ends needs none.

        ``assistant``: the assistant the run was made from, as it was read (perhaps a while
        ago). The run is written only if the assistant is still so (same version, updated at
        the same instant); else ``AssistantChangedError``, and nothing is written.
        """

    @abc.abstractmethod
    async def set_run_status(
        self,
        run_id: str,
        status: RunState,
        *,
        result: Any = None,
        error: Mapping[str, Any] | None = None,
        events: Sequence[WebhookEvent] = (),
        holder: tuple[str, int] | None = None,
        thread_status: ThreadStatus | None = None,
        if_active: bool = False,
    ) -> bool:
        """Record a status change; ``result``/``error`` are stored when given.

        ``events`` (webhooks the change causes) go to the outbox in the same transaction, and
        so does ``thread_status``, the run's thread's new status (a run that ended).
        With ``holder`` (``worker_id``, ``attempt``) the write is fenced: it happens only while
        that worker still holds that attempt of the run, so a holder whose run was taken over
        writes nothing (no events, no thread status). With ``if_active`` it happens only while
        the record is still pending or running (a cancel never overwrites an outcome; a run
        cancelled on record never reads running again). A ``thread_status`` written is
        activity on the thread: it re-arms the thread's TTL, as ``update_thread`` does.
        Returns whether the record was written.
        """

    @abc.abstractmethod
    async def cancel_on_record(self, run_id: str, action: StopOnRecord) -> bool:
        """Mark a pending or running run cancelled, with the ``action`` its holder applies
        when it reads the mark (``stop_on_record``); False when the run had ended (an
        outcome is never overwritten). The mark ends the run's lease, as any end does."""

    @abc.abstractmethod
    async def stop_on_record(self, run_id: str) -> StopOnRecord | None:
        """What the cancel on ``run_id``'s record asks for; None when it reads no cancel,
        and ``interrupt`` for a run cancelled otherwise (a thread or assistant deleted)."""

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

    # leases

    @abc.abstractmethod
    async def renew_leases(self, worker_id: str, run_ids: Sequence[str]) -> set[str]:
        """Extend the leases ``worker_id`` holds on ``run_ids``; returns the ids of the runs
        still active and this worker's.

        A run missing from the answer is no longer this worker's to execute: ended, deleted,
        claimed by another worker after the lease lapsed, or cancelled on record (whose lease
        is extended all the same: the holder is alive and ends the run itself).
        """

    @abc.abstractmethod
    async def claim_expired_runs(
        self,
        worker_id: str,
        graph_ids: Sequence[str],
        *,
        limit: int,
        max_attempts: int,
        abandoned_events: Callable[[RunRecord], Sequence[WebhookEvent]] | None = None,
    ) -> Claim:
        """Take over active runs whose lease expired; exactly one caller gets each run.

        Only runs of ``graph_ids``, at most ``limit``, oldest first, and only the oldest
        active run of a thread (the others follow in order once it ends). A run that has
        already had ``max_attempts`` executions is not claimed but failed, with an error that
        says so; those are ``Claim.abandoned``, and ``abandoned_events(run)`` of each go to
        the webhook outbox in the same transaction.
        """

    @abc.abstractmethod
    async def record_worker(self, worker_id: str, url: str) -> None:
        """Note where ``worker_id`` can be reached (its advertised URL), for
        :meth:`lease_holders`."""

    @abc.abstractmethod
    async def lease_holders(self, worker_id: str) -> dict[str, str]:
        """The other workers holding unexpired leases on active runs, with their recorded
        URLs (a holder that never recorded one is left out)."""

    @abc.abstractmethod
    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        """Expire the leases ``worker_id`` holds (all, or ``run_ids``) so any worker may claim
        those runs at once; returns how many."""

    # crons (see worker.store.crons for the claim protocol)

    @abc.abstractmethod
    async def create_cron(self, cron: CronRecord) -> None: ...

    @abc.abstractmethod
    async def get_cron(self, cron_id: str) -> CronRecord | None: ...

    @abc.abstractmethod
    async def update_cron(self, cron_id: str, changes: Mapping[str, Any]) -> CronRecord | None:
        """Set the columns named in ``changes`` (``crons.CRON_MUTABLE``); None when missing."""

    @abc.abstractmethod
    async def delete_cron(self, cron_id: str) -> bool: ...

    @abc.abstractmethod
    async def search_crons(self, query: CronQuery) -> list[CronRecord]: ...

    @abc.abstractmethod
    async def count_crons(self, query: CronQuery) -> int:
        """How many crons match ``query``'s filters (its paging and order are ignored)."""

    @abc.abstractmethod
    async def claim_due_crons(
        self, worker_id: str, *, now: datetime, claim_s: float, limit: int
    ) -> list[CronRecord]:
        """Hold up to ``limit`` due crons for ``worker_id`` until ``now + claim_s``; exactly
        one caller gets each cron while its claim lasts."""

    @abc.abstractmethod
    async def finish_cron_fire(
        self, cron_id: str, worker_id: str, *, due: datetime, next_run_date: datetime
    ) -> bool:
        """Advance a cron ``worker_id`` holds from ``due`` to ``next_run_date`` and drop the
        claim; False when the claim or the due time changed meanwhile (nothing written)."""

    @abc.abstractmethod
    async def release_cron_claim(self, cron_id: str, worker_id: str) -> None:
        """Drop ``worker_id``'s claim without advancing: the cron is due again at once."""
