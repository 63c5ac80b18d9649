"""Real workers on loopback ports, the official LangGraph SDK client, a fake LB admin API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support import free_port
from worker.app import create_app
from worker.keys import MANAGER
from worker.runs.manager import RunManager
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration


@dataclass
class Worker:
    app: web.Application
    runner: web.AppRunner
    settings: WorkerSettings

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def manager(self) -> RunManager:
        return self.app[MANAGER]

    def client(self) -> LangGraphClient:
        return get_client(url=self.url, api_key=None)


WorkerFactory = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def make_worker(tmp_path: Path) -> AsyncIterator[WorkerFactory]:
    started: list[Worker] = []

    async def start(**overrides: Any) -> Worker:
        port = free_port()
        values: dict[str, Any] = {
            "port": port,
            "store": f"sqlite:///{tmp_path}/worker-{port}.sqlite",
            "keepalive_interval_s": 0.5,
            "shutdown_timeout_s": 5.0,
            "webhook_allow_networks": ["loopback"],
            "log_level": "warning",
        }
        app_options = {
            k: overrides.pop(k) for k in ("webhook_resolve", "sql_trace") if k in overrides
        }
        values.update(overrides)
        settings = WorkerSettings(**values)
        app = create_app(settings, **app_options)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        worker = Worker(app, runner, settings)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.runner.cleanup()
        assert worker.manager.load == 0, "runs or capacity slots left in flight"
    leaked = [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith(("run-", "registration-", "ws-forward"))
    ]
    assert not leaked, f"tasks left behind: {leaked}"


@pytest.fixture
async def worker(make_worker: WorkerFactory) -> Worker:
    return await make_worker()


@pytest.fixture
async def client(worker: Worker) -> AsyncIterator[LangGraphClient]:
    sdk = worker.client()
    yield sdk
    await sdk.aclose()


@dataclass
class FakeLbAdmin:
    """A real aiohttp server standing in for the LB admin API; records every call."""

    url: str = ""
    calls: list[tuple[str, str, Any, str | None]] = field(default_factory=list)
    status: int = 200

    def paths(self, method: str) -> list[str]:
        return [path for m, path, _, _ in self.calls if m == method]


@pytest.fixture
async def fake_lb() -> AsyncIterator[FakeLbAdmin]:
    fake = FakeLbAdmin()

    async def record(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        fake.calls.append(
            (request.method, request.path, body, request.headers.get("Authorization"))
        )
        if fake.status >= 400:
            return web.json_response({"error": {"code": "x", "message": "no"}}, status=fake.status)
        return web.json_response(body or {})

    app = web.Application()
    app.router.add_route("*", "/admin/instances", record)
    app.router.add_route("*", "/admin/instances/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()
