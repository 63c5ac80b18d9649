"""The status document's state labels (pure)."""

from __future__ import annotations

import pytest

from lb.fleet.registry import Health, Instance
from lb.status.model import state_label


@pytest.mark.parametrize(
    ("changes", "label"),
    [
        ({}, "unknown"),
        ({"health": Health.HEALTHY}, "healthy"),
        ({"health": Health.UNHEALTHY}, "unhealthy"),
        ({"health": Health.HEALTHY, "ejected": True}, "ejected"),
        ({"health": Health.HEALTHY, "draining": True}, "draining"),
        ({"health": Health.HEALTHY, "worker_draining": True}, "draining"),
        ({"health": Health.UNHEALTHY, "draining": True, "ejected": True}, "draining"),
    ],
)
def test_state_label(changes: dict[str, object], label: str) -> None:
    instance = Instance(id="a", url="http://127.0.0.1:1", max_capacity=1, **changes)  # type: ignore[arg-type]
    assert state_label(instance) == label
