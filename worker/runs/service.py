"""Creating runs: the steps every API (LangGraph, simple, WebSocket) shares, in order.

1. take a capacity slot from the manager's ``admission`` (503 ``at_capacity`` before anything
   else; handlers take it before reading the request body and pass it to ``create``),
2. resolve the assistant (``runs.assistants``: from the worker's cache or the store, its
   config and context merged under the run's) and the thread (404, or one to create),
3. refuse a thread another worker is running (409; a thread made just now has no runs),
4. admit the run on its thread per ``multitask_strategy`` (409 on reject),
5. write the run's record, and only then
6. start it. The caller answers 2xx after this returns: an accepted run is always on record.

Step 5 is one transaction (``Store.begin_run``): the run's record, its thread made busy (or
created) and, for a run that starts at once, its start -- the record is written ``running``
with the start's webhook events, and the run has nothing more to write when it starts. A
thread created there gets the default TTL (langgraph.json's ``checkpointer.ttl``, as
``POST /threads`` gives it), except a stateless run's thread deleted when the run ends; the
TTL of an existing thread restarts. A run made from a cached assistant is written only if
the assistant is still as read; if it changed (on another worker), steps 2-5 are done again
with the assistant read from the store.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from worker.errors import Conflict, NotFound
from worker.graphs import GraphEntry, GraphRegistry
from worker.runs.active import ActiveRun
from worker.runs.admission import Reservation
from worker.runs.assistants import (
    AssistantCache,
    ResolvedAssistant,
    apply_assistant,
    resolve_assistant,
)
from worker.runs.manager import RunManager
from worker.runs.model import MultitaskStrategy, RunSpec, run_kwargs
from worker.store.base import (
    AssistantChangedError,
    AssistantRecord,
    RunRecord,
    Store,
    ThreadRecord,
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RunService:
    """Admission and persistence of new runs; see the module docstring for the order."""

    def __init__(
        self,
        *,
        store: Store,
        graphs: GraphRegistry,
        manager: RunManager,
        worker_id: str,
        check_webhook: Callable[[str], Awaitable[None]],
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.graphs = graphs
        self.manager = manager
        self.assistants = AssistantCache()
        self._worker_id = worker_id
        self._check_webhook = check_webhook
        self._clock = clock

    def graph(self, assistant_or_graph_id: str) -> GraphEntry:
        entry = self.graphs.get(assistant_or_graph_id)
        if entry is None:
            raise NotFound(
                f"assistant {assistant_or_graph_id!r} not found; "
                f"graphs served here: {', '.join(self.graphs.names)}",
                code="assistant_not_found",
            )
        return entry

    async def thread(self, thread_id: str) -> ThreadRecord:
        thread = await self.store.get_thread(thread_id)
        if thread is None:
            raise NotFound(f"thread {thread_id} not found", code="thread_not_found")
        return thread

    async def create(
        self,
        slot: Reservation,
        *,
        assistant_id: str,
        spec: RunSpec,
        thread_id: str | None,
        if_not_exists: str = "reject",
        multitask_strategy: MultitaskStrategy = "enqueue",
        metadata: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> ActiveRun:
        """Admit, record and start a run with ``slot``; ``thread_id=None`` makes it stateless.

        The caller holds ``slot`` in ``admission.reservation()``, which gives it back unless
        the run took it over. ``run_id`` is chosen by the caller when it must be the same on
        every worker (a cron firing); a new UUID otherwise.
        """
        # The one place a run learns its assistant: its graph, and its config and context
        # merged under the run's (stored so, so a resumed run gets the same). The assistant
        # comes from this worker's cache when it can; the run's record is written only if
        # the assistant is still as read, else it is read again and the run made anew.
        args = (spec, thread_id, if_not_exists, multitask_strategy, metadata, run_id)
        resolved = await resolve_assistant(self.store, self.graphs, assistant_id, self.assistants)
        if not resolved.cached:
            return await self._create_from(slot, resolved, *args)
        try:
            return await self._create_from(slot, resolved, *args, check=True)
        except AssistantChangedError:
            self.assistants.forget(resolved.assistant.assistant_id)
        # Changed since this worker read it: as read now, as a run reads it without a cache.
        resolved = await resolve_assistant(self.store, self.graphs, assistant_id, self.assistants)
        return await self._create_from(slot, resolved, *args)

    async def check(self, assistant_id: str, spec: RunSpec) -> None:
        """Raise now what ``create`` would raise for this assistant and spec before it writes
        anything (no such assistant, config and context both given, a webhook URL refused):
        a batch checks all its runs before it starts one."""
        resolved = await resolve_assistant(self.store, self.graphs, assistant_id, self.assistants)
        await self._applied(spec, resolved)

    async def _applied(self, spec: RunSpec, resolved: ResolvedAssistant) -> RunSpec:
        """``spec`` with the assistant's config and context merged in, its webhook allowed."""
        spec = apply_assistant(spec, resolved)
        if spec.webhook:
            await self._check_webhook(spec.webhook)
        return spec

    async def _create_from(
        self,
        slot: Reservation,
        resolved: ResolvedAssistant,
        spec: RunSpec,
        thread_id: str | None,
        if_not_exists: str,
        multitask_strategy: MultitaskStrategy,
        metadata: dict[str, Any] | None,
        run_id: str | None,
        *,
        check: bool = False,
    ) -> ActiveRun:
        """``create`` from ``resolved``; ``check``: write the run only if the assistant is
        still as read (``AssistantChangedError`` otherwise)."""
        entry = resolved.entry
        spec = await self._applied(spec, resolved)
        thread = await self._thread_for(spec, thread_id, if_not_exists)
        now = self._clock()
        record = RunRecord(
            run_id=run_id or str(uuid.uuid4()),
            thread_id=thread.thread_id,
            assistant_id=resolved.assistant.assistant_id,
            graph_id=entry.graph_id,
            status="pending",
            created_at=now,
            updated_at=now,
            metadata=dict(metadata or {}),
            multitask_strategy=multitask_strategy,
            kwargs=run_kwargs(spec),
            worker_id=self._worker_id,
        )
        return await self._admit_and_start(
            slot, record, spec, entry, thread, assistant=resolved.assistant if check else None
        )

    async def _thread_for(
        self, spec: RunSpec, thread_id: str | None, if_not_exists: str
    ) -> _Thread:
        """The run's thread: a new one for a stateless run, else the named one (404 unless
        it exists or the request asks to create it)."""
        if thread_id is None:
            return _Thread(str(uuid.uuid4()), spec.on_completion == "delete", create=True, new=True)
        if await self.store.get_thread(thread_id) is not None:
            return _Thread(thread_id, ephemeral=False)
        if if_not_exists != "create":
            raise NotFound(f"thread {thread_id} not found", code="thread_not_found")
        # Another request may create it concurrently: then the run joins that one.
        return _Thread(thread_id, ephemeral=False, create=True)

    async def restart(self, record: RunRecord, spec: RunSpec) -> ActiveRun:
        """Run ``record`` again under its own id (the simple API's resume)."""
        with self.manager.admission.reservation() as slot:
            entry = self.graph(record.graph_id)
            again = dataclasses.replace(
                record,
                status="pending",
                updated_at=self._clock(),
                kwargs=run_kwargs(spec),
                worker_id=self._worker_id,
                result=None,
                error=None,
                attempt=1,
            )
            return await self._admit_and_start(slot, again, spec, entry, _Thread(record.thread_id))

    async def recover(self, record: RunRecord) -> ActiveRun:
        """Resume ``record``, just claimed from a worker that stopped (already on record); one
        cancelled on record is only ended, as its cancel asks (interrupt or rollback)."""
        cancelled = record.status == "cancelled"  # claimed to be ended, not resumed
        stop = await self.store.stop_on_record(record.run_id) if cancelled else None
        with self.manager.admission.reservation() as slot:
            entry = self.graph(record.graph_id)
            spec = RunSpec.model_validate(record.kwargs)
            run = self.manager.admit(
                slot,
                record,
                spec,
                entry,
                "enqueue",
                ephemeral=spec.on_completion == "delete",
                recovered=True,
            )
            if stop is not None:
                run.stop_action = stop  # its task stops it as it begins: no step executes
            self.manager.start(run)
            return run

    async def _admit_and_start(
        self,
        slot: Reservation,
        record: RunRecord,
        spec: RunSpec,
        entry: GraphEntry,
        thread: _Thread,
        *,
        assistant: AssistantRecord | None = None,
    ) -> ActiveRun:
        strategy: MultitaskStrategy = record.multitask_strategy  # type: ignore[assignment]
        if not thread.new:
            elsewhere = await self.store.active_runs_elsewhere(record.thread_id, self._worker_id)
            if elsewhere:
                raise Conflict(
                    f"thread {record.thread_id} has an active run ({elsewhere[0].run_id}) on "
                    f"worker {elsewhere[0].worker_id}; send requests for this thread there",
                    code="thread_busy",
                )
        run = self.manager.admit(slot, record, spec, entry, strategy, ephemeral=thread.ephemeral)
        run.new_thread = thread.new
        # A run first on its thread and not delayed starts as soon as its task does: its
        # record is written running, with its start's events (no pending-then-running).
        stored, events = record, []
        if run.turn.is_set() and not spec.after_seconds and run.stop_action is None:
            stored = dataclasses.replace(record, status="running")
            events = self.manager.outbox.started(run)
            run.start_recorded = True
        try:
            await self.store.begin_run(
                stored,
                thread_metadata={"graph_id": entry.graph_id, "assistant_id": record.assistant_id},
                create_thread=thread.create,
                temporary_thread=thread.ephemeral,
                events=events,
                assistant=assistant,
            )
        except AssistantChangedError:
            self.manager.abort(run, keep_slot=True)  # the slot serves the run made anew
            raise
        except BaseException:
            self.manager.abort(run)
            raise
        self.manager.start(run)
        return run


@dataclasses.dataclass(frozen=True, slots=True)
class _Thread:
    """The thread a new run goes to: ``create`` it if missing; ``new``: made for this run
    (nothing else can be on it); ``ephemeral``: deleted when the run ends."""

    thread_id: str
    ephemeral: bool = False
    create: bool = False
    new: bool = False
