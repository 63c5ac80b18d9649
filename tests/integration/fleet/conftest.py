"""The fleet tests start real workers with the worker suite's own fixture, and put the real LB
in front of them (``balanced``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.worker.conftest import Worker, make_worker
from tests.support import eventually

__all__ = ["balanced", "make_worker"]

Fleet = tuple[LoadBalancer, list[Worker]]


@contextlib.asynccontextmanager
async def balanced(workers: Sequence[Worker], data_dir: Path) -> AsyncIterator[LoadBalancer]:
    """The LB (round robin: successive new threads and calls alternate between the workers),
    started once every worker is routable."""
    balancer = LoadBalancer(
        LBSettings(
            port=0,
            admin_port=0,
            instances=",".join(w.url for w in workers),
            strategy="round_robin",
            data_dir=data_dir,
            health_interval_s=0.1,
            access_log=False,
        )
    )
    await balancer.start()
    try:
        assert balancer.components is not None
        registry = balancer.components.registry
        await eventually(lambda: len(registry.snapshot.routable) == len(workers))
        yield balancer
    finally:
        await balancer.stop()


@pytest.fixture
async def sdk(fleet: Fleet) -> AsyncIterator[LangGraphClient]:
    """The official SDK pointed at the LB of the module's ``fleet``."""
    client = get_client(url=f"http://127.0.0.1:{fleet[0].proxy_port}", api_key=None)
    yield client
    await client.aclose()
