"""A fake worker: a real aiohttp server on a free loopback port with scripted behaviour.

Tests script it through plain attributes (health status, reported load, failures) and read
what it saw (requests by path, cancellations). Nothing is mocked: the LB talks HTTP to it.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

import orjson
from aiohttp import WSMsgType, web

from common.contract import RUNS_STARTED_HEADER

FAKE = web.AppKey("fake", "FakeWorker")


@dataclass
class FakeWorker:
    name: str
    health_status: int = 200
    current_load: int = 0
    max_capacity: int | None = None
    at_capacity: bool = False  # POST /runs answers 503 at_capacity
    seen: collections.Counter[str] = field(default_factory=collections.Counter)
    cancelled: int = 0
    started: int = 0
    active: int = 0  # /slow requests in progress
    upload_bytes: int = 0
    ws_close_codes: list[int | None] = field(default_factory=list)
    # GET /metrics: runs as a worker reports them (in progress, queued, ended by outcome).
    runs_running: int = 0
    runs_queued: int = 0
    runs_ended: dict[str, int] = field(default_factory=dict)
    # /gated: each piece put here is written as one chunk; a (piece, True) tuple ends the body.
    gate: asyncio.Queue[tuple[bytes, bool]] = field(default_factory=asyncio.Queue)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FakeWorker:
        app = web.Application(client_max_size=1 << 20)
        app[FAKE] = self
        r = app.router
        r.add_get("/health", _health)
        r.add_get("/metrics", _metrics)
        r.add_route("*", "/echo", _echo)
        r.add_get("/slow", _slow)
        r.add_post("/runs/wait", _slow)  # creates work at the LB: takes a capacity slot
        r.add_get("/sse", _sse)
        r.add_get("/ws", _ws)
        r.add_route("*", "/status/{code}", _status)
        r.add_get("/download", _download)
        r.add_post("/upload", _upload)
        r.add_route("*", "/drop", _drop)
        r.add_get("/chunked", _chunked)
        r.add_post("/runs", _runs)
        r.add_post("/runs/batch", _batch)
        r.add_post("/threads/{thread_id}/runs", _runs)
        r.add_post("/early", _early)
        r.add_get("/gated", _gated)
        r.add_get("/blob", _blob)
        r.add_get("/threads/{thread_id}/runs/{run_id}", _echo)
        self.runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _fake(request: web.Request) -> FakeWorker:
    fake = request.app[FAKE]
    fake.seen[f"{request.method} {request.path}"] += 1
    return fake


async def _health(request: web.Request) -> web.Response:
    fake = request.app[FAKE]  # health checks are not counted as traffic
    body: dict[str, object] = {"status": "ok", "current_load": fake.current_load}
    if fake.max_capacity is not None:
        body["max_capacity"] = fake.max_capacity
    return web.json_response(body, status=fake.health_status)


async def _metrics(request: web.Request) -> web.Response:
    fake = request.app[FAKE]  # scraped by the LB's status page, not counted as traffic
    lines = [
        "# TYPE graphfleet_worker_runs_in_progress gauge",
        f"graphfleet_worker_runs_in_progress {fake.runs_running}.0",
        f"graphfleet_worker_runs_queued {fake.runs_queued}.0",
    ]
    lines += [
        f'graphfleet_worker_runs_total{{graph_id="g",outcome="{outcome}"}} {count}.0'
        for outcome, count in fake.runs_ended.items()
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def _echo(request: web.Request) -> web.Response:
    fake = _fake(request)
    body = await request.read()
    return web.json_response(
        {
            "worker": fake.name,
            "method": request.method,
            "path": request.path_qs,
            "headers": dict(request.headers.items()),
            "body_length": len(body),
        },
        headers={"X-Custom": "yes", "Connection": "keep-alive, X-Drop", "X-Drop": "hop"},
    )


async def _slow(request: web.Request) -> web.Response:
    fake = _fake(request)
    fake.started += 1
    fake.active += 1
    try:
        await asyncio.sleep(float(request.query.get("s", "1")))
    except asyncio.CancelledError:
        fake.cancelled += 1
        raise
    finally:
        fake.active -= 1
    return web.json_response({"worker": fake.name, "slept": True})


async def _sse(request: web.Request) -> web.StreamResponse:
    fake = _fake(request)
    count = int(request.query.get("n", "3"))
    interval = float(request.query.get("interval", "0.2"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    try:
        for i in range(count):
            await response.write(
                f"event: tick\ndata: {orjson.dumps({'i': i}).decode()}\n\n".encode()
            )
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        fake.cancelled += 1
        raise
    await response.write_eof()
    return response


async def _ws(request: web.Request) -> web.WebSocketResponse:
    fake = _fake(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            if message.data.startswith("close:"):
                await ws.close(code=int(message.data[6:]), message=b"asked to")
                break
            await ws.send_str("echo:" + message.data)
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(message.data[::-1])
    fake.ws_close_codes.append(ws.close_code)
    return ws


async def _status(request: web.Request) -> web.Response:
    _fake(request)
    return web.json_response(
        {"status": int(request.match_info["code"])}, status=int(request.match_info["code"])
    )


async def _download(request: web.Request) -> web.StreamResponse:
    _fake(request)
    total = int(request.query["bytes"])
    chunk = b"x" * 65536
    response = web.StreamResponse()
    response.content_length = total
    await response.prepare(request)
    sent = 0
    while sent < total:
        piece = chunk[: min(len(chunk), total - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


async def _upload(request: web.Request) -> web.Response:
    fake = _fake(request)
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
    fake.upload_bytes = total
    return web.json_response({"received": total})


async def _chunked(request: web.Request) -> web.StreamResponse:
    """A body of unknown length: chunked on the wire."""
    _fake(request)
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for piece in (b"alpha-", b"beta-", b"gamma"):
        await response.write(piece)
    await response.write_eof()
    return response


async def _drop(request: web.Request) -> web.Response:
    """Receive the request, then hang up without answering (a worker crashing mid-request)."""
    _fake(request)
    await request.read()
    assert request.transport is not None
    request.transport.close()
    raise asyncio.CancelledError


async def _runs(request: web.Request) -> web.Response:
    fake = _fake(request)
    await request.read()
    if fake.at_capacity:
        return web.json_response({"error": {"code": "at_capacity", "message": "full"}}, status=503)
    thread = request.match_info.get("thread_id", "t-new")
    return web.json_response(
        {"worker": fake.name, "run_id": "r1"},
        headers={"Content-Location": f"/threads/{thread}/runs/r1"},
    )


async def _batch(request: web.Request) -> web.Response:
    """``POST /runs/batch``: as many runs as the body lists, said in the header a worker
    sets for the LB."""
    fake = _fake(request)
    runs = await request.json()
    return web.json_response(
        [{"worker": fake.name, "run_id": f"r{i}"} for i in range(len(runs))],
        headers={RUNS_STARTED_HEADER: str(len(runs))},
    )


async def _early(request: web.Request) -> web.Response:
    """Answer at once without reading the request body (as a worker refusing an upload does)."""
    _fake(request)
    return web.json_response({"early": True})


async def _gated(request: web.Request) -> web.StreamResponse:
    """A chunked body written piece by piece as the test releases it through ``fake.gate``."""
    fake = _fake(request)
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    while True:
        piece, last = await fake.gate.get()
        if last:
            await response.write_eof(piece)  # the last piece and the terminator in one write
            return response
        await response.write(piece)


async def _blob(request: web.Request) -> web.Response:
    """A body of ``bytes`` bytes, sent whole."""
    _fake(request)
    return web.Response(body=b"b" * int(request.query["bytes"]))
