"""Commands on executions, shared by the simple API and the WebSocket: find, stop, resume.

An execution is a run seen through the simple API; its ``execution_id`` is the run id and
stays the same across pause and resume.
"""

from __future__ import annotations

from typing import Any

from worker.errors import Conflict, NotFound, Unprocessable
from worker.runs.active import ActiveRun
from worker.runs.model import CancelAction, RunSpec, simple_status
from worker.runs.peers import CommandSender
from worker.runs.service import RunService
from worker.store.base import ACTIVE_RUN_STATES, RunRecord

MISSING: Any = object()  # no resume value was given (``None`` is a value)


async def find_execution(
    service: RunService, execution_id: str, graph_id: str | None = None
) -> RunRecord:
    """The record of ``execution_id`` (of ``graph_id`` when given), or 404."""
    record = await service.store.get_run(execution_id)
    if record is None or (graph_id is not None and record.graph_id != graph_id):
        where = f" of graph {graph_id}" if graph_id else ""
        raise NotFound(f"execution {execution_id}{where} not found", code="execution_not_found")
    return record


async def stop_execution(
    service: RunService, record: RunRecord, action: str, commands: CommandSender | None = None
) -> str:
    """Cancel (``cancel``) or pause (``pause``) an execution; returns its run id.

    An execution running on another worker is stopped there, through ``commands``; when
    that worker does not hear it, 409 ``run_held_elsewhere``.
    """
    stop: CancelAction = "pause" if action == "pause" else "interrupt"
    run = service.manager.get(record.run_id)
    if run is None or run.done.is_set():
        if record.status not in ACTIVE_RUN_STATES:
            raise Conflict(
                f"execution {record.run_id} is {simple_status(record.status)}, not running",
                code="run_not_active",
            )
        if commands is None or not await commands.send_command(
            record.worker_id, record.run_id, stop
        ):
            raise Conflict(
                f"execution {record.run_id} runs on worker {record.worker_id}",
                code="run_held_elsewhere",
            )
        return record.run_id
    return service.manager.stop(record.run_id, stop).run_id


async def resume_execution(service: RunService, record: RunRecord, value: Any) -> ActiveRun:
    """Continue a paused execution, or answer the ``interrupt()`` it waits at with ``value``."""
    previous = RunSpec.model_validate(record.kwargs)
    if record.status == "paused":
        if value is not MISSING:
            raise Unprocessable(
                "a paused execution continues where it stopped and takes no value",
                code="invalid_command",
            )
        command = None
    elif record.status == "interrupted":
        command = {"resume": None if value is MISSING else value}
    else:
        raise Conflict(
            f"execution {record.run_id} is {simple_status(record.status)}; only paused or "
            "interrupted executions resume",
            code="not_resumable",
        )
    spec = previous.model_copy(update={"input": None, "command": command, "after_seconds": None})
    return await service.restart(record, spec)
