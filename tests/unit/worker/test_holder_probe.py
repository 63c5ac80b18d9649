"""Which lease holders' addresses a sweeper may probe: where a refusal means the holder is gone."""

from __future__ import annotations

import pytest

from worker.runs.recovery import probeable


@pytest.mark.parametrize(
    ("holder_url", "own_url", "ok"),
    [
        ("http://10.0.0.7:8000", "http://10.0.0.8:8000", True),
        ("http://worker-2.internal:8000", "http://10.0.0.8:8000", True),
        ("http://[fd00::7]:8000", "http://10.0.0.8:8000", True),
        # One machine (the SQLite fleet): loopback is the same loopback.
        ("http://127.0.0.1:8001", "http://127.0.0.1:8002", True),
        ("http://localhost:8001", "http://[::1]:8002", True),
        # From another machine or container, a loopback address is somebody else's.
        ("http://127.0.0.1:8001", "http://10.0.0.8:8000", False),
        # A wildcard names no host at all.
        ("http://0.0.0.0:8001", "http://0.0.0.0:8002", False),
        ("http://[::]:8001", "http://127.0.0.1:8002", False),
    ],
)
def test_probeable(holder_url: str, own_url: str, ok: bool) -> None:
    assert probeable(holder_url, own_url) is ok
