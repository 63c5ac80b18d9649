"""Shared fixtures: service discovery for the real PostgreSQL and Redis on this machine.

A test that needs a service skips with a reason when the service is unreachable, except when
``REQUIRE_SERVICES=1`` (CI), where an unreachable service is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import NoReturn

import pytest

POSTGRES_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _missing(reason: str) -> NoReturn:
    """Skip the test, or fail it under ``REQUIRE_SERVICES=1``."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def _require(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        _missing(f"{name} is not reachable on {host}:{port}")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    _require("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The path of the ``redis-server`` program, for tests that start their own Redis."""
    path = shutil.which("redis-server")
    if path is None:
        _missing("redis-server is not installed")
    return path
