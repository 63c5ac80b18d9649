"""The image's HEALTHCHECK (``python -m common.healthcheck``) against a real LB and worker port."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from common.healthcheck import targets
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB
from tests.support import free_port


async def _check(env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "common.healthcheck", env={**os.environ, **env}
    )
    return await process.wait()


async def test_healthy_when_the_lb_answers_unhealthy_when_nothing_does(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    nothing = str(free_port())
    assert await _check({"LB_ADMIN_PORT": str(balancer.admin_port), "WORKER_PORT": nothing}) == 0
    assert await _check({"LB_ADMIN_PORT": nothing, "WORKER_PORT": nothing}) == 1


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["python", "-m", "worker"], ["http://127.0.0.1:8000/ok"]),
        (["python", "-m", "lb", "--strategy", "random"], ["http://127.0.0.1:8081/health"]),
        (["/sbin/tini", "--"], ["http://127.0.0.1:8000/ok", "http://127.0.0.1:8081/health"]),
    ],
)
def test_the_running_process_decides_what_is_asked(
    monkeypatch: pytest.MonkeyPatch, cmdline: list[str], expected: list[str]
) -> None:
    for name in ("WORKER_HOST", "WORKER_PORT", "LB_ADMIN_HOST", "LB_ADMIN_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LB_ADMIN_HOST", "0.0.0.0")  # as the image sets it
    assert targets(cmdline) == expected
