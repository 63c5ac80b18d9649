"""Cancelling runs wherever they execute: one run, a thread's runs, or runs by status.

A run executing here is stopped directly. One executing on another worker is sent the
command (``peers``: through Redis, else straight to that worker's recorded address), which
stops it at once. When its holder does not hear the command (unreachable, or it just
ended), the cancel is written to the run's record, the one message every holder reads: at
its next lease renewal (every third of ``WORKER_RUN_LEASE_S``) the holder stops a run whose
record reads cancelled, as the record says (interrupt, or rollback: the run undone and
forgotten). The mark keeps the run's lease until its holder ends the run: if that holder is
gone, the worker that claims the lapsed lease ends the run as asked, and never resumes it.

Either way the run's record reads ``interrupted`` (stored as ``cancelled``) before the
caller answers, as the official server's does, so a GET right after the cancel agrees with
it; the run's driver writes its final outcome when it stops. A run that ended meanwhile
keeps its own outcome: the mark is written only over a pending or running status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from worker.errors import Conflict
from worker.runs.active import ActiveRun, RunNotActiveError
from worker.runs.manager import RunManager
from worker.runs.model import CancelAction
from worker.runs.peers import CommandSender
from worker.store.base import ACTIVE_RUN_STATES, RunRecord, Store

log = structlog.get_logger("worker.runs")


class RunHeldElsewhereError(Conflict):
    """The run executes on another worker, which did not hear a command only it can apply."""

    code = "run_held_elsewhere"


def held_elsewhere(record: RunRecord) -> RunHeldElsewhereError:
    return RunHeldElsewhereError(
        f"run {record.run_id} is held by worker {record.worker_id}; "
        "send requests naming its thread there"
    )


@dataclass(frozen=True)
class Canceller:
    """Stops runs of the fleet; see the module docstring."""

    manager: RunManager
    commands: CommandSender
    store: Store
    worker_id: str

    async def cancel(
        self, record: RunRecord, action: CancelAction, *, mark: bool = True
    ) -> ActiveRun | None:
        """Stop ``record``'s run; the local ``ActiveRun`` (await its ``done``) or None.

        ``mark``: write the cancelled status at once (else only the run's end writes it;
        a cancel its holder did not hear is always written, being the only message).

        Raises ``RunNotActiveError`` for a run that has ended, ``RunHeldElsewhereError``
        for a pause (which the record cannot carry) that the run's holder did not hear.
        """
        run = self.manager.get(record.run_id)
        if run is not None and not run.done.is_set():
            self.manager.stop(run.run_id, action)
            if mark and not run.done.is_set():
                await self._mark(record, action)
            return run
        if record.status not in ACTIVE_RUN_STATES:
            raise RunNotActiveError(f"run {record.run_id} has already ended")
        holder = record.worker_id
        if await self.commands.send_command(holder, record.run_id, action):
            if mark:
                await self._mark(record, action)
            return None
        if action == "pause":
            raise held_elsewhere(record)
        # Not heard: the record carries the cancel and its action (see the module docstring).
        if await self._mark(record, action):
            log.info("run_cancel_written", run_id=record.run_id, holder=holder, action=action)
        return None

    async def _mark(self, record: RunRecord, action: CancelAction) -> bool:
        if action == "pause":
            return False
        return await self.store.cancel_on_record(record.run_id, action)

    async def cancel_many(
        self, records: Sequence[RunRecord], action: CancelAction, *, mark: bool = True
    ) -> int:
        """Cancel each active one of ``records``; how many were asked to stop.

        Runs that ended meanwhile are skipped.
        """
        stopped = 0
        for record in records:
            try:
                await self.cancel(record, action, mark=mark)
            except (RunNotActiveError, RunHeldElsewhereError):
                continue
            stopped += 1
        return stopped

    async def stop_thread(self, thread_id: str, timeout_s: float, poll_s: float) -> None:
        """Cancel every active run of the thread and wait (at most ``timeout_s``) for them
        to end, so that nothing writes to the thread afterwards."""
        local = [r for r in self.manager.thread_active(thread_id) if not r.done.is_set()]
        for run in local:
            self.manager.stop(run.run_id, "interrupt")
        remote = await self.store.active_runs_elsewhere(thread_id, self.worker_id)
        # Not marked (unless their holder did not hear it): their status leaving
        # pending/running is how their end is seen here.
        await self.cancel_many(remote, "interrupt", mark=False)
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(run.done.wait() for run in local))
                while remote and await self._still_active(remote):  # noqa: ASYNC110
                    await asyncio.sleep(poll_s)  # another worker's run: only the store tells
        except TimeoutError:
            pass  # the thread goes anyway; a late write of a stopped run finds no record

    async def _still_active(self, records: Sequence[RunRecord]) -> bool:
        for record in records:
            now = await self.store.get_run(record.run_id)
            if now is not None and now.status in ACTIVE_RUN_STATES:
                return True
        return False
