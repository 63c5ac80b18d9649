"""A run admitted on this worker, and the errors about runs a client can get."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.pregel import Pregel
from langgraph.runtime import RunControl

from worker.errors import Conflict
from worker.graphs import GraphEntry
from worker.runs import executor
from worker.runs.events import RunEvents
from worker.runs.model import CancelAction, RunSpec
from worker.store.base import RunRecord, RunState


class ThreadBusyError(Conflict):
    """``multitask_strategy=reject`` and the thread has an active run."""

    code = "thread_busy"


class RunNotActiveError(Conflict):
    """A stop was asked for a run that is not pending or running here."""

    code = "run_not_active"


@dataclass(eq=False)
class ActiveRun:
    """A run admitted on this worker, from admission until its task ends.

    ``recovered``: claimed from a worker that stopped; it resumes from its last checkpoint.
    ``new_thread``: its thread was made for it just now (a stateless run's): it has no
    checkpoints to look for. ``scratch``: its checkpoints end with it, so they are kept in
    the worker's memory, not the store. ``start_recorded``: the run started at once, so its
    record was written ``running`` (with its start's webhook events) when it was created,
    and its start has nothing left to write.
    """

    record: RunRecord
    spec: RunSpec
    entry: GraphEntry
    events: RunEvents
    ephemeral: bool = False
    recovered: bool = False
    new_thread: bool = False
    start_recorded: bool = False
    control: RunControl = field(default_factory=RunControl)
    state: RunState = "pending"
    stop_action: CancelAction | Literal["release", "lost"] | None = None
    started: bool = False
    outcome: executor.Outcome | None = None
    base_checkpoint_id: str | None = None
    turn: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # Its task has begun: a stop asked before then is seen by the task as it begins (a task
    # cancelled before its first step never runs, not even its clean-up).
    driving: bool = False

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def thread_id(self) -> str:
        return self.record.thread_id

    @property
    def scratch(self) -> bool:
        """Whether the run's checkpoints end with it: its thread was made for it and is
        deleted when it ends (a stateless run's), and it checkpoints only on exit. The store
        would write them only to delete them; in memory, a crash loses nothing a restart
        from the input would not redo. A run handed back carries them to the store."""
        return self.ephemeral and self.new_thread and self.spec.durability == "exit"

    @property
    def graph(self) -> Pregel[Any, Any, Any, Any]:
        """The graph holding this run's checkpoints (``GraphEntry.graph_for``)."""
        return self.entry.graph_for(scratch=self.scratch)

    @property
    def released(self) -> bool:
        """Handed back to the fleet unfinished (shutdown): another worker carries it on."""
        return self.stop_action == "release"
