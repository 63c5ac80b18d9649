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
from worker.errors import Conflict
from worker.keys import MANAGER, SETTINGS
from worker.runs.peers import STOP_PATH


class StopBody(Body):
    action: Literal["interrupt", "rollback", "pause"]
    holder: str


async def stop_run(request: web.Request) -> web.Response:
    body = await parse_body(request, StopBody)
    worker_id = request.app[SETTINGS].worker_id
    if body.holder != worker_id:
        raise Conflict(f"this is worker {worker_id}, not {body.holder}", code="wrong_worker")
    applied = request.app[MANAGER].apply_command(request.match_info["run_id"], body.action)
    return json_response({"applied": applied})


def add_routes(app: web.Application) -> None:
    app.router.add_post(STOP_PATH, stop_run)
