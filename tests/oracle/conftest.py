"""Fixtures of the differential tests: the oracle (one per session) and graphfleet, side by side.

See ``tests/oracle/harness.py`` for what they give and how a test compares the two.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from langgraph_sdk import get_client

from tests.integration.worker.conftest import WorkerFactory, make_worker  # noqa: F401
from tests.oracle.harness import GRAPHS_CONFIG, Target, oracle_installed, run_oracle
from tests.support import fresh_schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def oracle_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of ``langgraph dev`` serving ``tests/oracle/graphs``; stopped at session end."""
    if not oracle_installed():
        reason = "the oracle is not installed in .oracle-venv/ (run `make oracle`)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with run_oracle(tmp_path_factory.mktemp("oracle")) as url:
        yield url


async def _target(name: str, url: str) -> Target:
    return Target(
        name=name,
        url=url,
        client=get_client(url=url, api_key=None),
        http=aiohttp.ClientSession(base_url=url),
    )


@pytest.fixture
async def targets(
    oracle_url: str,
    make_worker: WorkerFactory,  # noqa: F811
) -> AsyncIterator[tuple[Target, Target]]:
    """``(graphfleet, oracle)``: one worker and the oracle, serving the same graphs."""
    worker = await make_worker(graphs=GRAPHS_CONFIG)
    pair = (await _target("graphfleet", worker.url), await _target("oracle", oracle_url))
    yield pair
    for target in pair:
        await target.client.aclose()
        await target.http.close()


@pytest.fixture(params=["graphfleet", "oracle"])
def target(request: pytest.FixtureRequest, targets: tuple[Target, Target]) -> Target:
    """Each server in turn, for tests that expect the same values from both."""
    return targets[0] if request.param == "graphfleet" else targets[1]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (the worker's SQLite file), or a Postgres URL on a fresh schema of this test's."""
    if request.param == "sqlite":
        yield None
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    with fresh_schema(dsn) as url:
        yield url


@pytest.fixture
async def pair(
    oracle_url: str,
    store_url: str | None,
    make_worker: WorkerFactory,  # noqa: F811
) -> AsyncIterator[tuple[Target, Target]]:
    """``(graphfleet, oracle)``, graphfleet on the store ``store_url`` names: tests using it
    run twice, on SQLite and on Postgres, each beside the same oracle."""
    overrides: dict[str, Any] = {"graphs": GRAPHS_CONFIG}
    if store_url is not None:
        overrides["store"] = store_url
    worker = await make_worker(**overrides)
    targets = tuple(
        Target(name, url, get_client(url=url, api_key=None), aiohttp.ClientSession(base_url=url))
        for name, url in (("graphfleet", worker.url), ("oracle", oracle_url))
    )
    yield targets  # type: ignore[misc]
    for target in targets:
        await target.client.aclose()
        await target.http.close()
