"""Operational endpoints: health for the LB, liveness, info, Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from common.contract import HEALTH_PATH, HealthBody
from worker.api.errors import json_response
from worker.keys import GRAPHS, MANAGER, METRICS, SETTINGS, STARTED_AT


def _version() -> str:
    try:
        return metadata.version("graphfleet")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def health(request: web.Request) -> web.Response:
    """What the LB's health checks read; 503 while draining (healthy, but no new work)."""
    manager = request.app[MANAGER]
    body: HealthBody = {
        "status": "draining" if manager.draining else "ok",
        "timestamp": datetime.now(UTC).isoformat(),
        "current_load": manager.load,
        "max_capacity": manager.max_concurrency,
        "running": manager.running,
        "queued": manager.queued,
        "instance_id": request.app[SETTINGS].worker_id,
    }
    return json_response(body, status=503 if manager.draining else 200)


async def ok(request: web.Request) -> web.Response:
    if request.app[MANAGER].draining:
        return json_response({"ok": False, "reason": "draining"}, status=503)
    return json_response({"ok": True})


async def info(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return json_response(
        {
            "version": _version(),
            "langgraph_py_version": metadata.version("langgraph"),
            "flags": {
                "assistants": True,
                "crons": True,
                "langsmith": False,
                "store": True,
                "strict_resume": False,
            },
            "instance_id": settings.worker_id,
            "graphs": request.app[GRAPHS].names,
            "max_capacity": settings.max_concurrency,
            "started_at": request.app[STARTED_AT].isoformat(),
        }
    )


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[METRICS].render())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get("/ok", ok)
    app.router.add_get("/info", info)
    app.router.add_get("/metrics", metrics)
