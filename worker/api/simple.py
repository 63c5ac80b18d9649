"""The simple API of the original deployment notes, on top of the same runs.

An execution is a run on its own thread (or on ``execution_options.thread_id``); its
``execution_id`` is the run id, and stays the same across pause and resume.
``/executions/{id}`` is a path the LB pins to the worker that holds the execution.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from worker.api.errors import json_response
from worker.api.schemas import ExecuteBody, parse_body
from worker.errors import Conflict, NotFound, Unprocessable
from worker.keys import MANAGER, SERVICE, STORE
from worker.runs.active import ActiveRun
from worker.runs.model import CancelAction, RunSpec, simple_status
from worker.runs.relay import Relay
from worker.runs.service import RunService
from worker.store.base import ACTIVE_RUN_STATES, RunRecord

MISSING: Any = object()


def execution_view(record: RunRecord) -> dict[str, Any]:
    error = record.error
    return {
        "execution_id": record.run_id,
        "status": simple_status(record.status),
        "result": None if record.status in ACTIVE_RUN_STATES else record.result,
        "error": f"{error.get('error')}: {error.get('message')}" if error else None,
        "graph_id": record.graph_id,
        "thread_id": record.thread_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


async def execution_record(
    service: RunService, execution_id: str, graph_id: str | None = None
) -> RunRecord:
    record = await service.store.get_run(execution_id)
    if record is None or (graph_id is not None and record.graph_id != graph_id):
        where = f" of graph {graph_id}" if graph_id else ""
        raise NotFound(f"execution {execution_id}{where} not found", code="execution_not_found")
    return record


async def stop_execution(
    service: RunService, record: RunRecord, action: str, relay: Relay | None = None
) -> str:
    """Cancel (``cancel``) or pause (``pause``) an execution; returns its run id.

    An execution running on another worker is stopped there, through ``relay``.
    """
    stop: CancelAction = "pause" if action == "pause" else "interrupt"
    run = service.manager.get(record.run_id)
    if run is None or run.done.is_set():
        if record.status not in ACTIVE_RUN_STATES:
            raise Conflict(
                f"execution {record.run_id} is {simple_status(record.status)}, not running",
                code="run_not_active",
            )
        if relay is None or not await relay.send_command(record.worker_id, record.run_id, stop):
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


async def execute(request: web.Request) -> web.Response:
    request.app[MANAGER].ensure_capacity()  # 503 before reading the body
    body = await parse_body(request, ExecuteBody)
    options = body.execution_options
    spec = RunSpec(
        input=body.input_data,
        config=options.config or {},
        context=options.context,
        stream_mode=options.stream_mode,
        timeout_s=options.timeout_s,
        webhook=options.webhook,
        on_completion="keep",
    )
    run = await request.app[SERVICE].create(
        assistant_id=body.graph_id,
        spec=spec,
        thread_id=options.thread_id,
        if_not_exists="create",
        multitask_strategy="reject",
        metadata=options.metadata,
    )
    return json_response(
        {"execution_id": run.run_id, "status": "running", "thread_id": run.thread_id},
        status=202,
        headers={"Location": f"/executions/{run.run_id}"},
    )


async def get_execution(request: web.Request) -> web.Response:
    record = await request.app[STORE].get_run(request.match_info["execution_id"])
    if record is None:
        raise NotFound(
            f"execution {request.match_info['execution_id']} not found",
            code="execution_not_found",
        )
    return json_response(execution_view(record))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/graphs/execute", execute)
    app.router.add_get("/executions/{execution_id}", get_execution)
