"""Stopping runs: on request (cancel, rollback, pause), at shutdown, and on a lost lease.

Each stop marks the run's ``stop_action`` and then cancels its task (or, for a pause, asks
the graph to stop after its current step); how the run ends is decided by its driver from
that mark. Nothing here awaits between marking and cancelling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from worker.runs.active import ActiveRun, RunNotActiveError
from worker.runs.model import CancelAction

REMOTE_ACTIONS = ("interrupt", "rollback", "pause")  # what another worker may ask for


def request_stop(run: ActiveRun | None, run_id: str, action: CancelAction) -> ActiveRun:
    """Cancel, roll back or pause ``run``; returns at once (await ``run.done``).

    ``pause`` lets the current step finish and keeps the checkpoint; it applies to a
    running run only. Raises ``RunNotActiveError`` for a run that is not pending or running.
    """
    if run is None or run.done.is_set():
        raise RunNotActiveError(f"run {run_id} is not pending or running on this worker")
    if action == "pause":
        if run.state != "running":
            raise RunNotActiveError(f"run {run_id} is {run.state}; only running runs pause")
        run.stop_action = "pause"
        run.control.request_drain("pause")
        return run
    run.stop_action = action
    _cancel(run, f"run {action} requested")
    return run


def _cancel(run: ActiveRun, reason: str) -> None:
    """Cancel ``run``'s task once it has begun; one that has not sees ``stop_action`` as it
    begins (see ``ActiveRun.driving``)."""
    if run.task is not None and run.driving:
        run.task.cancel(reason)


async def hand_back(runs: Iterable[ActiveRun]) -> int:
    """Stop ``runs`` and hand them back to the fleet unfinished; returns how many.

    Each run's lease is expired, not its status changed: another worker claims the run and
    resumes it from its last checkpoint. A run that was being paused is handed back too.
    """
    tasks = []
    for run in runs:
        if run.task is not None and not run.task.done():
            run.stop_action = "release"
            _cancel(run, "worker shutting down; run released to the fleet")
            tasks.append(run.task)
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(tasks)


def lose(run: ActiveRun | None) -> None:
    """Stop a run whose lease another worker now holds, writing nothing about it."""
    if run is not None and run.task is not None and not run.task.done():
        run.stop_action = "lost"
        _cancel(run, "run lost its lease to another worker")


async def wait_done(runs: Iterable[ActiveRun], timeout_s: float) -> bool:
    """Wait until every one of ``runs`` ended, at most ``timeout_s``; True when they all did."""
    pending = [r for r in runs if not r.done.is_set()]
    if not pending:
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(r.done.wait() for r in pending))
    except TimeoutError:
        return all(r.done.is_set() for r in pending)
    return True
