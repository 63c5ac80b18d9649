"""A real ``python -m worker`` process joining, serving through, and leaving a real LB."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration
TOKEN = "join-token"


@pytest.mark.timeout(60)
async def test_worker_registers_serves_drains_and_deregisters(tmp_path: Path) -> None:
    balancer = LoadBalancer(
        LBSettings(
            port=0,
            admin_port=0,
            admin_token=TOKEN,
            data_dir=tmp_path / "lb",
            health_interval_s=0.1,
            access_log=False,
        )
    )
    await balancer.start()
    assert balancer.components is not None
    registry = balancer.components.registry
    port = free_port()
    env = {
        **os.environ,
        "WORKER_PORT": str(port),
        "WORKER_STORE": f"sqlite:///{tmp_path}/worker.sqlite",
        "WORKER_LB_ADMIN_URL": f"http://127.0.0.1:{balancer.admin_port}",
        "WORKER_LB_ADMIN_TOKEN": TOKEN,
        "WORKER_REGISTRATION_INTERVAL_S": "0.5",
        "WORKER_LOG_LEVEL": "warning",
    }
    worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", env=env)
    try:
        await eventually(lambda: len(registry.snapshot.routable) == 1, timeout_s=30)
        (instance,) = registry.snapshot.instances
        assert instance.url == f"http://127.0.0.1:{port}"
        assert instance.max_capacity > 0
        async with aiohttp.ClientSession() as client:
            async with client.post(
                f"http://127.0.0.1:{balancer.proxy_port}/runs/wait",
                json={"assistant_id": "pipeline", "input": {}},
            ) as response:
                assert response.status == 200
                assert response.headers["X-Fleet-Instance"] == instance.id
                assert await response.json() == {"steps": ["extract", "transform", "load"]}
            # A long run in flight when the worker is told to stop: it finishes first.
            running = asyncio.create_task(
                client.post(
                    f"http://127.0.0.1:{balancer.proxy_port}/runs/wait",
                    json={
                        "assistant_id": "pipeline",
                        "input": {},
                        "config": {"configurable": {"delay_s": 0.5}},
                    },
                )
            )

            async def run_started() -> bool:
                async with client.get(f"http://127.0.0.1:{port}/health") as health:
                    return bool((await health.json())["running"] == 1)

            await eventually(run_started)
            worker.send_signal(signal.SIGTERM)
            await eventually(
                lambda: (
                    not registry.snapshot.instances
                    or registry.snapshot.instances[0].state == "draining"
                ),
                timeout_s=10,
            )
            response = await running
            assert response.status == 200
            response.release()
        # Deregistered once its work was done, and exited cleanly.
        await eventually(lambda: not registry.snapshot.instances, timeout_s=15)
        assert await asyncio.wait_for(worker.wait(), 15) == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await balancer.stop()
