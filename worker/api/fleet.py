"""Calls between the workers of a fleet: a stop for a run this worker executes.

``POST /fleet/runs/{run_id}/stop`` ``{"action": "interrupt"|"rollback"|"pause", "holder"}``
is what another worker sends when it cannot reach this one through Redis (see
``worker.runs.peers``). ``holder`` is the worker the sender believes executes the run: any
other worker answers 409 ``wrong_worker`` and does nothing. Otherwise 200
``{"applied": bool}``: false when the run is not pending or running here (it ended).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from worker.api.errors import json_response
from worker.api.schemas import Body, parse_body
from worker.errors import Conflict, NotFound
from worker.keys import MANAGER, SETTINGS
from worker.runs.peers import STOP_PATH

# Every request the LB forwards carries it; one worker's call to another never does.
FORWARDED_BY_LB = "X-Forwarded-For"


class StopBody(Body):
    action: Literal["interrupt", "rollback", "pause"]
    holder: str


async def stop_run(request: web.Request) -> web.Response:
    if FORWARDED_BY_LB in request.headers:
        # The LB refuses /fleet/ paths; a request it forwarded anyway (a spelling it did not
        # recognise) is a client's, and clients may not make calls between workers.
        raise NotFound("no such path", code="not_found")
    body = await parse_body(request, StopBody)
    worker_id = request.app[SETTINGS].worker_id
    if body.holder != worker_id:
        raise Conflict("this worker is not the run's holder", code="wrong_worker")
    applied = request.app[MANAGER].apply_command(request.match_info["run_id"], body.action)
    return json_response({"applied": applied})


def add_routes(app: web.Application) -> None:
    app.router.add_post(STOP_PATH, stop_run)
