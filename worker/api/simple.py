"""The simple API of the original deployment notes, on top of the same runs.

An execution is a run on its own thread (or on ``execution_options.thread_id``); its
``execution_id`` is the run id, and stays the same across pause and resume (the commands on
executions are in ``worker.runs.commands``, shared with the WebSocket).
``/executions/{id}`` is a path the LB pins to the worker that holds the execution.
"""

from __future__ import annotations

from aiohttp import web

from worker.api.errors import json_response
from worker.api.schemas import ExecuteBody, parse_body
from worker.keys import MANAGER, SERVICE
from worker.runs.commands import find_execution
from worker.runs.execution import Execution
from worker.runs.model import RunSpec


async def execute(request: web.Request) -> web.Response:
    # The slot is taken first: a worker that cannot take the run answers 503 before reading.
    with request.app[MANAGER].admission.reservation() as slot:
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
            slot,
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
    record = await find_execution(request.app[SERVICE], request.match_info["execution_id"])
    return json_response(Execution.of(record).view())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/graphs/execute", execute)
    app.router.add_get("/executions/{execution_id}", get_execution)
