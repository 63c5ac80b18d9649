"""Retention: a finished run stays readable (its events replayable) for ``retention_s``."""

from __future__ import annotations

import asyncio

from worker.runs.active import ActiveRun


class Retention:
    """Finished runs by id, each dropped ``retention_s`` after ``keep()``; ``close()`` at end."""

    def __init__(self, retention_s: float) -> None:
        self._retention_s = retention_s
        self._runs: dict[str, ActiveRun] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    def keep(self, run: ActiveRun) -> None:
        """Retain ``run`` (a no-op with retention off, or for a run that leaves no record)."""
        if self._retention_s <= 0 or run.ephemeral:
            return
        self._runs[run.run_id] = run
        self._expiry[run.run_id] = asyncio.get_running_loop().call_later(
            self._retention_s, self.forget, run.run_id
        )

    def get(self, run_id: str) -> ActiveRun | None:
        return self._runs.get(run_id)

    def of_thread(self, thread_id: str) -> list[ActiveRun]:
        return [run for run in self._runs.values() if run.thread_id == thread_id]

    def forget(self, run_id: str) -> None:
        """Drop a retained run now (it expired, or a new execution of it begins)."""
        self._runs.pop(run_id, None)
        handle = self._expiry.pop(run_id, None)
        if handle is not None:
            handle.cancel()

    def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._runs.clear()
