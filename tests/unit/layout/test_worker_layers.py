"""The worker's layers point down: ``worker.api`` (HTTP) → ``worker.runs`` (the run service)
→ ``worker.store`` (persistence). Services beside the runs (webhooks, registration with the
LB, crons, the thread TTL sweep) do not import the HTTP layer either."""

from __future__ import annotations

import pytest

from tests.unit.layout.test_imports import _graph

# Each layer, and the modules it must not import (by prefix).
BELOW_HTTP = ("worker.api", "worker.app", "worker.keys", "worker.__main__")
RULES = {
    "worker.store": (*BELOW_HTTP, "worker.runs", "worker.webhooks", "worker.membership"),
    "worker.runs": (*BELOW_HTTP, "worker.webhooks", "worker.membership"),
    "worker.webhooks": BELOW_HTTP,
    "worker.membership": BELOW_HTTP,
    "worker.crons": (*BELOW_HTTP, "worker.webhooks", "worker.membership"),
    "worker.ttl": (*BELOW_HTTP, "worker.webhooks", "worker.membership"),
}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("layer", sorted(RULES))
def test_a_layer_does_not_import_the_layers_above_it(layer: str) -> None:
    graph = _graph()
    members = [name for name in graph if _within(name, layer)]
    assert members, f"no module in {layer}"
    offenders = sorted(
        f"{name} imports {target}"
        for name in members
        for target in graph[name]
        if any(_within(target, above) for above in RULES[layer])
    )
    assert offenders == []


HANDLERS = (
    "worker.api.crons",
    "worker.api.ops",
    "worker.api.runs",
    "worker.api.simple",
    "worker.api.store",
    "worker.api.threads",
    "worker.api.ws",
)


def test_handler_modules_share_logic_through_the_run_service_not_each_other() -> None:
    graph = _graph()
    offenders = sorted(
        f"{name} imports {target}"
        for name in HANDLERS
        for target in graph[name]
        if target in HANDLERS and target != name
    )
    assert offenders == []
