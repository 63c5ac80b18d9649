"""The stop call to another worker, against a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from worker.runs.peers import PeerCommands
from worker.store.base import Store

pytestmark = pytest.mark.integration


class _NoRelay:
    async def send_command(self, worker_id: str, run_id: str, action: str) -> bool:
        return False  # no Redis: the call goes over HTTP


class _Addresses:
    def __init__(self, url: str) -> None:
        self.url = url

    async def lease_holders(self, worker_id: str) -> dict[str, str]:
        return {"b": self.url}


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def peer() -> AsyncIterator[tuple[str, list[int]]]:
    """A worker address that refuses every stop (409, as a worker that is not the holder)."""
    calls: list[int] = []

    async def refuse(request: web.Request) -> web.Response:
        calls.append(1)
        return web.json_response({"error": {"code": "wrong_worker"}}, status=409)

    app = web.Application()
    app.router.add_post("/fleet/runs/{run_id}/stop", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


async def test_a_refusing_address_is_not_asked_again_at_once(
    peer: tuple[str, list[int]],
) -> None:
    url, calls = peer
    clock = _Clock()
    async with aiohttp.ClientSession() as session:
        commands = PeerCommands(
            relay=cast(Any, _NoRelay()),
            store=cast(Store, _Addresses(url)),
            session=session,
            worker_id="a",
            timeout_s=2.0,
            clock=clock,
        )
        for run in ("r1", "r2", "r3"):  # a bulk cancel of three runs held by "b"
            assert not await commands.send_command("b", run, "interrupt")
        assert len(calls) == 1
        clock.now += 2.5  # after the pause, "b" is asked again
        assert not await commands.send_command("b", "r4", "interrupt")
        assert len(calls) == 2
