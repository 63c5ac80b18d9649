"""The autoscaler with the local backend, end to end: real processes, real LB, real load."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.lb.processes import start_lb_process
from tests.support import eventually

FAKE_WORKER = f"{sys.executable} -m tests.fake_worker_process"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _settings(tmp_path: Path, **overrides: object) -> LBSettings:
    options: dict[str, object] = {
        "port": 0,
        "admin_port": 0,
        "data_dir": tmp_path,
        "access_log": False,
        "health_interval_s": 0.1,
        "autoscale": "local",
        "autoscale_local_command": FAKE_WORKER,
        "autoscale_interval_s": 0.2,
        "autoscale_min": 2,
        "autoscale_max": 5,
        "autoscale_up_window_s": 0.4,
        "autoscale_down_window_s": 1.5,
        "autoscale_max_step_up": 1,
        "queue_timeout_s": 30.0,
        "shutdown_timeout_s": 5.0,
    }
    options.update(overrides)
    return LBSettings(**options)  # type: ignore[arg-type]


@pytest.mark.timeout(90)
async def test_load_grows_the_fleet_and_idle_shrinks_it_without_failed_requests(
    tmp_path: Path,
) -> None:
    balancer = LoadBalancer(_settings(tmp_path))
    await balancer.start()
    assert balancer.components is not None
    assert balancer.components.autoscaler is not None
    registry = balancer.components.registry
    backend = balancer.components.autoscaler.backend
    pids: set[int] = set()
    try:
        # The minimum comes up on its own.
        await eventually(lambda: len(registry.snapshot.routable) == 2, timeout_s=30)
        base = f"http://127.0.0.1:{balancer.proxy_port}"
        async with aiohttp.ClientSession() as client:

            async def hold(seconds: float) -> int:
                async with client.get(f"{base}/slow?s={seconds}") as response:
                    await response.read()
                    return response.status

            # 12 long requests on 2 workers of capacity 2: utilization far above 80 %.
            load = [asyncio.create_task(hold(6.0)) for _ in range(12)]
            await eventually(lambda: len(registry.snapshot.routable) >= 4, timeout_s=30)
            pids |= {w.process.pid for w in backend.workers.values()}  # type: ignore[attr-defined]
            assert all(status == 200 for status in await asyncio.gather(*load))

            # Idle: back to the minimum, while a client keeps calling; none of it fails.
            failures: list[int] = []
            stop = asyncio.Event()

            async def keep_calling() -> int:
                calls = 0
                while not stop.is_set():
                    async with client.get(f"{base}/echo") as response:
                        await response.read()
                        calls += 1
                        if response.status != 200:
                            failures.append(response.status)
                    await asyncio.sleep(0.01)
                return calls

            caller = asyncio.create_task(keep_calling())
            await eventually(
                lambda: len(registry.snapshot.instances) == 2 and len(backend.workers) == 2,  # type: ignore[attr-defined]
                timeout_s=40,
            )
            stop.set()
            calls = await caller
        assert calls > 0
        assert failures == []
        autoscaler = balancer.components.autoscaler
        await eventually(lambda: autoscaler.describe()["last_decision"]["current"] == 2)
        assert autoscaler.describe()["backend"] == "local"
    finally:
        pids |= {w.process.pid for w in backend.workers.values()}  # type: ignore[attr-defined]
        await balancer.stop()
    # No process left behind.
    assert pids
    await eventually(lambda: not any(_alive(pid) for pid in pids), timeout_s=10)


async def test_a_crashed_worker_is_replaced(tmp_path: Path) -> None:
    balancer = LoadBalancer(_settings(tmp_path, autoscale_down_window_s=300))
    await balancer.start()
    assert balancer.components is not None
    assert balancer.components.autoscaler is not None
    registry = balancer.components.registry
    backend = balancer.components.autoscaler.backend
    try:
        await eventually(lambda: len(registry.snapshot.routable) == 2, timeout_s=30)
        # Workers that die with this LB are neither persisted nor shared.
        assert balancer.components.membership.records() == []
        victim = next(iter(backend.workers.values()))  # type: ignore[attr-defined]
        victim.process.kill()
        await eventually(lambda: victim.id not in registry.snapshot.by_id, timeout_s=10)
        await eventually(lambda: len(registry.snapshot.routable) == 2, timeout_s=30)
        assert victim.id not in backend.workers  # type: ignore[attr-defined]
    finally:
        await balancer.stop()


async def test_admin_autoscaler_shows_and_changes_the_policy(tmp_path: Path) -> None:
    balancer = LoadBalancer(_settings(tmp_path, autoscale_min=1, autoscale_max=3))
    await balancer.start()
    admin = f"http://127.0.0.1:{balancer.admin_port}/admin/autoscaler"
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(admin) as response:
                body = await response.json()
            assert body["backend"] == "local"
            assert (body["config"]["min_instances"], body["config"]["max_instances"]) == (1, 3)
            async with client.put(admin, json={"min": 2, "max": 4, "paused": True}) as response:
                assert response.status == 200
                config = (await response.json())["config"]
            assert (config["min_instances"], config["max_instances"], config["paused"]) == (
                2,
                4,
                True,
            )
            for bad, field in (
                ({"min": -1}, "min"),
                ({"min": 3, "max": 2}, "max"),
                ({"x": 1}, "x"),
            ):
                async with client.put(admin, json=bad) as response:
                    assert response.status == 422
                    assert (await response.json())["error"]["field"] == field
    finally:
        await balancer.stop()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found |= {int(child) for child in text}
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_workers_do_not_outlive_an_lb_killed_with_sigkill(tmp_path: Path) -> None:
    running = await start_lb_process(
        tmp_path,
        autoscale="local",
        autoscale_local_command=FAKE_WORKER,
        autoscale_interval_s="0.2",
        health_interval_s="0.1",
    )
    lb = running.process
    try:
        await running.wait_until("/ready", timeout_s=30)
        await eventually(lambda: len(_children(lb.pid)) == 2, timeout_s=30)
        workers = _children(lb.pid)
        lb.kill()
        await lb.wait()
        await eventually(lambda: not any(_alive(pid) for pid in workers), timeout_s=10)
    finally:
        await running.stop()


@pytest.mark.timeout(120)
async def test_real_workers_are_started_under_load_and_stopped_with_the_lb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default command, ``python -m worker``: LangGraph runs make the load."""
    monkeypatch.setenv("WORKER_MAX_CONCURRENCY", "2")
    monkeypatch.setenv("WORKER_LOG_LEVEL", "warning")
    balancer = LoadBalancer(_settings(tmp_path, autoscale_local_command="", autoscale_max=3))
    await balancer.start()
    assert balancer.components is not None
    assert balancer.components.autoscaler is not None
    registry = balancer.components.registry
    backend = balancer.components.autoscaler.backend
    pids: set[int] = set()
    try:
        await eventually(lambda: len(registry.snapshot.routable) == 2, timeout_s=60)
        assert all(i.max_capacity == 2 for i in registry.snapshot.routable)
        base = f"http://127.0.0.1:{balancer.proxy_port}"
        async with aiohttp.ClientSession() as client:

            async def run(delay_s: float) -> int:
                async with client.post(
                    f"{base}/runs/wait",
                    json={
                        "assistant_id": "pipeline",
                        "input": {},
                        "config": {"configurable": {"delay_s": delay_s}},
                    },
                ) as response:
                    await response.read()
                    return response.status

            load = [asyncio.create_task(run(1.5)) for _ in range(4)]
            await eventually(lambda: len(registry.snapshot.routable) == 3, timeout_s=60)
            pids = {w.process.pid for w in backend.workers.values()}  # type: ignore[attr-defined]
            assert len(pids) == 3
            assert await asyncio.gather(*load) == [200] * 4
    finally:
        pids |= {w.process.pid for w in backend.workers.values()}  # type: ignore[attr-defined]
        await balancer.stop()
    await eventually(lambda: not any(_alive(pid) for pid in pids), timeout_s=10)
