"""The hook API: ``/webhooks`` registers, lists, changes and deletes hooks, shows their
recent delivery attempts and sends them a test event (``worker.webhooks.hooks``).

Every worker of a fleet serves it (hooks live in the store). A hook's secret appears in the
answer to its creation only.
"""

from __future__ import annotations

from aiohttp import web

from worker.api.errors import json_response
from worker.api.schemas import parse_body
from worker.errors import BadRequest
from worker.keys import WEBHOOKS
from worker.webhooks.hooks import HookCreate, HookPatch, hook_view

MAX_ATTEMPTS_LISTED = 100


async def create_hook(request: web.Request) -> web.Response:
    body = await parse_body(request, HookCreate)
    return json_response(await request.app[WEBHOOKS].hooks.create(body), status=201)


async def list_hooks(request: web.Request) -> web.Response:
    return json_response(await request.app[WEBHOOKS].hooks.list_all())


async def get_hook(request: web.Request) -> web.Response:
    hook = await request.app[WEBHOOKS].hooks.get(request.match_info["hook_id"])
    return json_response(hook_view(hook))


async def patch_hook(request: web.Request) -> web.Response:
    body = await parse_body(request, HookPatch)
    hooks = request.app[WEBHOOKS].hooks
    return json_response(await hooks.update(request.match_info["hook_id"], body))


async def delete_hook(request: web.Request) -> web.Response:
    await request.app[WEBHOOKS].hooks.delete(request.match_info["hook_id"])
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ATTEMPTS_LISTED:
        raise BadRequest(
            f"limit must be an integer from 1 to {MAX_ATTEMPTS_LISTED}", code="invalid_limit"
        )
    hooks = request.app[WEBHOOKS].hooks
    return json_response(await hooks.attempts(request.match_info["hook_id"], int(raw)))


async def test_hook(request: web.Request) -> web.Response:
    hooks = request.app[WEBHOOKS].hooks
    return json_response(await hooks.test(request.match_info["hook_id"]), status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks", create_hook)
    app.router.add_get("/webhooks", list_hooks)
    app.router.add_get("/webhooks/{hook_id}", get_hook)
    app.router.add_patch("/webhooks/{hook_id}", patch_hook)
    app.router.add_delete("/webhooks/{hook_id}", delete_hook)
    app.router.add_get("/webhooks/{hook_id}/deliveries", list_deliveries)
    app.router.add_post("/webhooks/{hook_id}/test", test_hook)
