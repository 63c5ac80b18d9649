"""The admin port: health, readiness and metrics; the admin API proper is in admin routes."""

from __future__ import annotations

import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lb.app import FLEET, Fleet


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok", "timestamp": time.time()})


async def ready(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    routable = len(fleet.registry.snapshot.routable)
    if fleet.stopping or routable == 0:
        return _json({"ready": False, "routable_instances": routable}, status=503)
    return _json({"ready": True, "routable_instances": routable})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[FLEET].metrics.registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def admin_app(fleet: Fleet) -> web.Application:
    app = web.Application(client_max_size=1 << 16)
    app[FLEET] = fleet
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app
