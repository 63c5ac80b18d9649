"""Runs in bulk: ``POST /runs/batch`` (stateless background runs) and ``POST /runs/cancel``.

A batch is validated whole before any run starts, so a malformed item starts nothing; each
run then takes its own capacity slot (503 ``at_capacity`` when the worker is full: runs
already started keep running and are named in no answer, as with separate requests).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from common.contract import RUNS_STARTED_HEADER
from worker.api.errors import json_response
from worker.api.run_specs import spec_from_body
from worker.api.schemas import RunCreateBody, parse, parse_body, read_json
from worker.api.thread_context import canceller
from worker.api.thread_schemas import RunsCancelBody
from worker.errors import NotFound, Unprocessable
from worker.keys import MANAGER, SERVICE, STORE
from worker.runs.model import CancelAction, run_view
from worker.store.base import ACTIVE_RUN_STATES, RunRecord, RunState

_MAX_BATCH = 1000


async def create_batch(request: web.Request) -> web.Response:
    raw = await read_json(request)
    if not isinstance(raw, list) or not raw:
        raise Unprocessable("body must be a non-empty list of runs", code="invalid_request")
    if len(raw) > _MAX_BATCH:
        raise Unprocessable(f"at most {_MAX_BATCH} runs per batch", code="invalid_request")
    bodies = [parse(RunCreateBody, item) for item in raw]
    created: list[dict[str, Any]] = []
    for body in bodies:
        with request.app[MANAGER].admission.reservation() as slot:
            run = await request.app[SERVICE].create(
                slot,
                assistant_id=body.assistant_id,
                spec=spec_from_body(body, stateless=True),
                thread_id=None,
                multitask_strategy=body.multitask_strategy,
                metadata=body.metadata,
            )
        created.append(run_view(run.record))
    response = json_response(created)
    response.headers[RUNS_STARTED_HEADER] = str(len(created))
    return response


async def _targets(request: web.Request, body: RunsCancelBody) -> list[RunRecord]:
    store = request.app[STORE]
    if body.status is not None:
        statuses: tuple[RunState, ...] = (
            ACTIVE_RUN_STATES if body.status == "all" else (body.status,)
        )
        found = await store.find_active_runs(statuses)
        if not found:
            raise NotFound("No runs found to cancel.", code="run_not_found")
        return found
    assert body.thread_id is not None  # the body's rule: both, when status is absent
    assert body.run_ids is not None
    await request.app[SERVICE].thread(body.thread_id)
    records = []
    for run_id in dict.fromkeys(body.run_ids):
        record = await store.get_run(run_id)
        if record is None or record.thread_id != body.thread_id:
            raise NotFound(
                f"run {run_id} not found on thread {body.thread_id}", code="run_not_found"
            )
        records.append(record)
    return records


async def cancel_runs(request: web.Request) -> web.Response:
    """Cancel runs by ``status`` (the fleet's), or ``thread_id`` + ``run_ids``: 204.

    Runs that already ended are left as they are; every named run must exist, and a status
    must match some run (404, as the official server).
    """
    action = request.query.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        raise Unprocessable(f"unknown action {action!r}", code="invalid_request")
    body = await parse_body(request, RunsCancelBody)
    records = await _targets(request, body)
    stop_action: CancelAction = "rollback" if action == "rollback" else "interrupt"
    await canceller(request).cancel_many(records, stop_action)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/runs/batch", create_batch)
    app.router.add_post("/runs/cancel", cancel_runs)
