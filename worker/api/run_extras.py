"""Runs in bulk: ``POST /runs/batch`` (stateless background runs) and ``POST /runs/cancel``.

A batch starts whole or not at all: every item is validated, its assistant resolved and its
webhook checked, and a capacity slot taken for each (503 ``at_capacity`` for the whole batch,
so the LB may send it to another worker: nothing was started), before the first run is
written. Should a write fail after all (the store, or an assistant deleted meanwhile), the
runs already started are rolled back. A batch larger than the worker's capacity can never
start whole: 422.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from common.contract import RUNS_STARTED_HEADER
from worker.api.errors import json_response
from worker.api.run_specs import spec_from_body
from worker.api.schemas import RunCreateBody, parse, parse_body, read_json
from worker.api.thread_context import canceller
from worker.api.thread_schemas import RunsCancelBody
from worker.errors import NotFound, Unprocessable
from worker.keys import MANAGER, SERVICE, STORE
from worker.runs.active import ActiveRun, RunNotActiveError
from worker.runs.model import CancelAction, run_view
from worker.store.base import ACTIVE_RUN_STATES, RunRecord, RunState

_MAX_BATCH = 1000


async def create_batch(request: web.Request) -> web.Response:
    raw = await read_json(request)
    if not isinstance(raw, list) or not raw:
        raise Unprocessable("body must be a non-empty list of runs", code="invalid_request")
    if len(raw) > _MAX_BATCH:
        raise Unprocessable(f"at most {_MAX_BATCH} runs per batch", code="invalid_request")
    admission, service = request.app[MANAGER].admission, request.app[SERVICE]
    if len(raw) > admission.max_concurrency:
        raise Unprocessable(
            f"a batch of {len(raw)} runs exceeds this worker's capacity of "
            f"{admission.max_concurrency} runs; send it in smaller batches",
            code="batch_too_large",
        )
    bodies = [parse(RunCreateBody, item) for item in raw]
    runs = [(body, spec_from_body(body, stateless=True)) for body in bodies]
    started: list[ActiveRun] = []
    with admission.reservations(len(runs)) as slots:
        for body, spec in runs:
            await service.check(body.assistant_id, spec)
        try:
            for slot, (body, spec) in zip(slots, runs, strict=True):
                run = await service.create(
                    slot,
                    assistant_id=body.assistant_id,
                    spec=spec,
                    thread_id=None,
                    multitask_strategy=body.multitask_strategy,
                    metadata=body.metadata,
                )
                started.append(run)
        except BaseException:
            # Refused half-way after all (the store failed, an assistant was deleted
            # meanwhile): the runs started are rolled back, so none of the batch is left.
            for run in started:
                with contextlib.suppress(RunNotActiveError):
                    request.app[MANAGER].stop(run.run_id, "rollback")
            raise
    response = json_response([run_view(run.record) for run in started])
    response.headers[RUNS_STARTED_HEADER] = str(len(started))
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
