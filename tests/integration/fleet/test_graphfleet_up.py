"""``graphfleet up`` in a fresh project directory: it serves that directory's graph through
the official SDK, and leaves no process behind on SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from langgraph_sdk import get_client

from tests.support import eventually, free_port

pytestmark = pytest.mark.integration

GRAPH = """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    name: str
    greeting: str


def greet(state: State) -> State:
    return {"greeting": f"hello, {state['name']}"}


builder = StateGraph(State)
builder.add_node("greet", greet)
builder.add_edge(START, "greet")
builder.add_edge("greet", END)
graph = builder.compile()
"""


def _descendants(root: int) -> set[int]:
    """Every live process below ``root``, from /proc (no psutil needed)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _operate(admin_port: int) -> None:
    """The status document shows the autoscaler's decisions; ``graphfleet ctl`` pauses it."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{admin_port}/admin/status") as r:
            doc = await r.json()
        assert doc["autoscaler"]["backend"] == "local"
        decisions = doc["autoscaler"]["decisions"]
        assert any(d["action"] == "scale_up" for d in decisions)  # from none to one worker
        assert all(d["reason"] for d in decisions)
        env = {**os.environ, "LB_ADMIN_URL": f"http://127.0.0.1:{admin_port}"}
        ctl = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "common.cli", "ctl", "--json", "autoscaler", "--pause",
            env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await ctl.communicate()
        assert ctl.returncode == 0
        assert json.loads(out)["config"]["paused"] is True
        async with session.get(f"http://127.0.0.1:{admin_port}/admin/status") as r:
            assert (await r.json())["autoscaler"]["paused"] is True


# Two fresh interpreters import LangGraph (the LB's worker and the graph): on a loaded shared
# machine that alone can take most of a minute, as for the local backend's own tests.
@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_up_serves_the_project_and_stops_everything(
    tmp_path: Path, signum: signal.Signals
) -> None:
    project = tmp_path / "my-app"
    project.mkdir()
    (project / "agent.py").write_text(GRAPH)
    (project / "langgraph.json").write_text('{"graphs": {"greeter": "./agent.py:graph"}}')
    port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LB_", "WORKER_"))}
    env.update(LB_LOG_LEVEL="warning", WORKER_LOG_LEVEL="warning")
    output = (tmp_path / "out.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "common.cli", "up", "--workers", "1:1",
        "--port", str(port), "--admin-port", str(admin_port),
        cwd=project, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{admin_port}/ready") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, timeout_s=90)
        client = get_client(url=f"http://127.0.0.1:{port}", api_key=None)
        try:
            thread = await client.threads.create()
            result = await client.runs.wait(thread["thread_id"], "greeter", input={"name": "fleet"})
        finally:
            await client.aclose()
        assert result == {"name": "fleet", "greeting": "hello, fleet"}
        await _operate(admin_port)
        workers = _descendants(process.pid)
        assert workers, "the local autoscaler runs its workers as children"
        process.send_signal(signum)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        output.close()
    printed = (tmp_path / "out.log").read_text()
    assert f"API          http://127.0.0.1:{port}" in printed
    assert f"status page  http://127.0.0.1:{admin_port}/" in printed
    assert f"metrics      http://127.0.0.1:{admin_port}/metrics" in printed
    assert (project / ".graphfleet" / "worker.sqlite").exists()


async def test_up_without_a_langgraph_json_says_so(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "common.cli", "up", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 2
    assert out == b""
    assert b"no " in err
    assert b"--config PATH" in err


@pytest.mark.timeout(120)  # `worker --help` imports LangGraph: slow on a loaded machine
@pytest.mark.parametrize(
    ("command", "expected"),
    [("lb", b"--status-interval-s LB_STATUS_INTERVAL_S"), ("worker", b"--graphs WORKER_GRAPHS")],
)
async def test_lb_and_worker_are_the_modules_with_every_flag(
    tmp_path: Path, command: str, expected: bytes
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "common.cli", command, "--help",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0
    assert out.startswith(b"usage: python -m " + command.encode())
    assert expected in out
