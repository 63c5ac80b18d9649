"""``graphfleet ctl`` against a real LB: tables, --json, actions, and its errors."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path

import pytest

from lb import ctl
from lb.app import LoadBalancer
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB
from tests.support import free_port

TOKEN = "ctl-token"


@pytest.fixture
def use_lb(monkeypatch: pytest.MonkeyPatch) -> object:
    def point(balancer: LoadBalancer, token: str = TOKEN) -> None:
        monkeypatch.setenv("LB_ADMIN_URL", f"http://127.0.0.1:{balancer.admin_port}")
        monkeypatch.setenv("LB_ADMIN_TOKEN", token)

    return point


async def _ctl(*argv: str) -> tuple[int, str, str]:
    # The CLI is synchronous; the LB under test runs on this loop, so the CLI gets a thread.
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(ctl.main, list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


async def test_instances_table_and_json(
    start_lb: StartLB, workers: list[FakeWorker], use_lb: object
) -> None:
    balancer = await start_lb(workers[:2], admin_token=TOKEN)
    use_lb(balancer)  # type: ignore[operator]
    code, out, _ = await _ctl("instances")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "INFLIGHT"]
    rows = [line.split() for line in lines[1:3]]
    assert [r[1] for r in rows] == ["healthy", "healthy"]
    # Aligned: every row's STATE column starts where the header's does.
    column = lines[0].index("STATE")
    assert all(line[column:].startswith("healthy") for line in lines[1:3])
    assert lines[-1] == "strategy: least_loaded"
    code, out, _ = await _ctl("--json", "instances")
    assert code == 0
    assert {i["url"] for i in json.loads(out)} == {w.url for w in workers[:2]}


async def test_drain_enable_remove_and_strategy(
    start_lb: StartLB, workers: list[FakeWorker], use_lb: object
) -> None:
    balancer = await start_lb(workers[:2], admin_token=TOKEN)
    use_lb(balancer)  # type: ignore[operator]
    assert balancer.components is not None
    ident = balancer.components.registry.snapshot.instances[0].id
    assert await _ctl("drain", ident) == (0, f"{ident}: draining\n", "")
    assert await _ctl("enable", ident) == (0, f"{ident}: healthy\n", "")
    assert await _ctl("strategy") == (0, "least_loaded\n", "")
    assert await _ctl("strategy", "random") == (0, "random\n", "")
    code, out, _ = await _ctl("--json", "strategy")
    assert json.loads(out) == {"strategy": "random"}
    assert await _ctl("remove", ident) == (0, f"{ident}: removing\n", "")
    code, out, err = await _ctl("autoscaler")
    assert (code, out.strip()) == (0, "autoscaler: off")
    code, _, err = await _ctl("autoscaler", "--pause")
    assert code == ctl.EXIT_REFUSED
    assert "autoscaler is off" in err


@pytest.mark.parametrize(
    ("argv", "token", "code", "message"),
    [
        (("drain", "no-such-id"), TOKEN, ctl.EXIT_NOT_FOUND, "no instance 'no-such-id'"),
        (("instances",), "wrong", ctl.EXIT_AUTH, "LB_ADMIN_TOKEN"),
        (("instances",), "", ctl.EXIT_AUTH, "LB_ADMIN_TOKEN"),
        (("strategy", "fastest"), TOKEN, ctl.EXIT_REFUSED, "strategy must be one of"),
        (("autoscaler", "--min", "5", "--max", "2"), TOKEN, ctl.EXIT_REFUSED, "autoscaler"),
    ],
)
async def test_errors_are_one_line_with_an_exit_code(
    start_lb: StartLB,
    workers: list[FakeWorker],
    use_lb: object,
    argv: tuple[str, ...],
    token: str,
    code: int,
    message: str,
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)
    assert balancer.components is not None
    before = [i.to_json()["state"] for i in balancer.components.registry.snapshot.instances]
    use_lb(balancer, token)  # type: ignore[operator]
    result, out, err = await _ctl(*argv)
    assert (result, out) == (code, "")
    assert err.count("\n") == 1
    assert err.startswith("graphfleet ctl: error: ")
    assert message in err
    assert [i.to_json()["state"] for i in balancer.components.registry.snapshot.instances] == before


async def test_an_unreachable_lb_through_the_graphfleet_command(tmp_path: Path) -> None:
    env = {**os.environ, "LB_ADMIN_URL": f"http://127.0.0.1:{free_port()}", "LB_ADMIN_TOKEN": "x"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "common.cli", "ctl", "instances",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == ctl.EXIT_UNREACHABLE
    assert out == b""
    assert err.decode().startswith("graphfleet ctl: error: cannot reach the LB admin API at")
    assert err.count(b"\n") == 1
