"""``WS /ws/graphs/{graph_id}``: live events of a graph's runs, and commands on them.

Frames sent: ``{"type": "subscribed", "graph_id"}`` once; ``{"type": "status",
"execution_id", "status", ...}`` when a run starts or ends; ``{"type": "event",
"execution_id", "event", "data"}`` for each stream event; ``{"type": "ack", "command",
"execution_id", "status"}`` after a command; ``{"type": "error", "error": {"code",
"message"}}`` for a bad one. The socket stays open after an error.

Commands: ``{"command": "cancel"|"pause"|"resume", "execution_id", "value"?}``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from worker import jsonutil
from worker.errors import ApiError, Unprocessable
from worker.keys import FEED, PEER_COMMANDS, SERVICE, SETTINGS
from worker.runs.commands import MISSING, find_execution, resume_execution, stop_execution
from worker.runs.model import simple_status

log = structlog.get_logger("worker.api.ws")

COMMANDS = ("cancel", "pause", "resume")


def _error_frame(exc: ApiError, command: Any = None) -> dict[str, Any]:
    frame: dict[str, Any] = exc.to_dict() | {"type": "error"}
    if command is not None:
        frame["command"] = command
    return frame


def _parse(raw: str) -> dict[str, Any]:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise Unprocessable("a command is a JSON object", code="invalid_command")
    return message


async def _handle(request: web.Request, graph_id: str, message: dict[str, Any]) -> dict[str, Any]:
    command = message.get("command")
    execution_id = message.get("execution_id")
    unknown = set(message) - {"command", "execution_id", "value"}
    if command not in COMMANDS:
        raise Unprocessable(
            f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}",
            code="invalid_command",
        )
    if unknown:
        raise Unprocessable(
            f"unsupported field(s): {', '.join(sorted(unknown))}", code="invalid_command"
        )
    if not isinstance(execution_id, str) or not execution_id:
        raise Unprocessable("execution_id (a string) is required", code="invalid_command")
    service = request.app[SERVICE]
    record = await find_execution(service, execution_id, graph_id)
    if command == "resume":
        run = await resume_execution(service, record, message.get("value", MISSING))
        return {
            "type": "ack",
            "command": command,
            "execution_id": run.run_id,
            "status": simple_status(run.state),
        }
    run_id = await stop_execution(service, record, command, request.app[PEER_COMMANDS])
    return {"type": "ack", "command": command, "execution_id": run_id, "status": "stopping"}


async def _forward(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]]) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            payload = await queue.get()
            await ws.send_str(jsonutil.dumps(payload).decode())


async def graph_socket(request: web.Request) -> web.WebSocketResponse:
    graph_id = request.match_info["graph_id"]
    entry = request.app[SERVICE].graph(graph_id)  # 404 before the upgrade
    ws = web.WebSocketResponse(heartbeat=request.app[SETTINGS].keepalive_interval_s)
    await ws.prepare(request)
    with request.app[FEED].subscribe(entry.graph_id) as queue:
        forwarder = asyncio.create_task(_forward(ws, queue), name=f"ws-forward-{graph_id}")
        try:
            await ws.send_json({"type": "subscribed", "graph_id": entry.graph_id})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                command = None
                try:
                    message = _parse(msg.data)
                    command = message.get("command")
                    reply = await _handle(request, entry.graph_id, message)
                except ApiError as exc:
                    reply = _error_frame(exc, command)
                except Exception:
                    log.exception("websocket_command_failed")
                    reply = _error_frame(ApiError("internal error; see the worker's logs"))
                await ws.send_str(jsonutil.dumps(reply).decode())
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws/graphs/{graph_id}", graph_socket)
