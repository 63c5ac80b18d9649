"""The docker backend against the Docker Engine API as aiodocker sends it (aioresponses).

Every test checks what went over the wire (method, path, query, JSON body) and what the LB's
registry holds afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from lb.autoscaler.backends.base import BackendError
from lb.autoscaler.backends.docker import DockerBackend, DockerConfig, HealthProbe
from lb.fleet.control import Membership
from lb.fleet.registry import Registry
from lb.settings import LBSettings
from tests.unit.autoscaler.http_api import HttpApi, Sent
from tests.unit.lb.helpers import FakeClock

ENGINE = "http://docker.test:2375"
V = "/v1.43"
LABELS = ["graphfleet.role=worker", "graphfleet.fleet=blue"]
CREATE = re.compile(re.escape(f"{ENGINE}{V}/containers/create") + r"\?name=.*")


def listed(*names: str) -> list[dict[str, Any]]:
    return [{"Id": f"id-{n}", "Names": [f"/{n}"], "State": "running", "Labels": {}} for n in names]


def inspected(container_id: str, ip: str) -> dict[str, Any]:
    return {
        "Id": container_id,
        "NetworkSettings": {"Networks": {"fleet-net": {"IPAddress": ip}}},
    }


@pytest.fixture
def api() -> Iterator[HttpApi]:
    with HttpApi() as mocked:
        yield mocked


@pytest.fixture
def registry() -> Registry:
    return Registry(FakeClock())


@pytest.fixture
def membership(registry: Registry) -> Membership:
    return Membership(registry, LBSettings())


def config(**options: Any) -> DockerConfig:
    defaults: dict[str, Any] = {
        "url": ENGINE,
        "api_version": "v1.43",
        "image": "graphfleet:test",
        "network": "fleet-net",
        "fleet": "blue",
        "env": {"WORKER_STORE": "sqlite:///data/runs.db", "WORKER_PORT": "1"},
    }
    return DockerConfig(**{**defaults, **options})


@pytest.fixture
async def make(membership: Membership, registry: Registry) -> AsyncIterator[Any]:
    made: list[DockerBackend] = []

    def factory(probe: HealthProbe | None = None, **options: Any) -> DockerBackend:
        extra: dict[str, Any] = {"probe": probe} if probe is not None else {}
        backend = DockerBackend(
            config(**options), membership, registry, probe_interval_s=0.01, **extra
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.close()


def list_filters(sent: Sent) -> Any:
    return json.loads(sent.query["filters"])


async def test_start_adopts_running_labelled_containers(
    api: HttpApi, make: Any, registry: Registry
) -> None:
    api.get(
        re.compile(re.escape(f"{ENGINE}{V}/containers/json") + r"\?.*"), payload=listed("w1", "w2")
    )
    backend = make()

    await backend.start()

    assert list_filters(api.only("GET", f"{V}/containers/json")) == {
        "label": LABELS,
        "status": ["running"],
    }
    assert {i.id: i.url for i in registry.snapshot.instances} == {
        "w1": "http://w1:8000",
        "w2": "http://w2:8000",
    }
    assert all(backend.owns(i) for i in registry.snapshot.instances)


async def test_current_counts_running_fleet_containers(api: HttpApi, make: Any) -> None:
    api.get(
        re.compile(re.escape(f"{ENGINE}{V}/containers/json") + r"\?.*"),
        payload=listed("a", "b", "c"),
    )

    assert await make().current() == 3
    assert list_filters(api.only("GET", f"{V}/containers/json"))["label"] == LABELS


async def test_api_version_auto_asks_the_engine_first(api: HttpApi, make: Any) -> None:
    api.get(f"{ENGINE}/version", payload={"ApiVersion": "1.41"})
    api.get(re.compile(re.escape(f"{ENGINE}/v1.41/containers/json") + r"\?.*"), payload=[])

    assert await make(api_version="auto").current() == 0
    assert [s.path for s in api.sent] == ["/version", "/v1.41/containers/json"]


async def test_scale_up_creates_starts_waits_for_health_and_registers(
    api: HttpApi, make: Any, registry: Registry
) -> None:
    for n in (1, 2):
        api.post(CREATE, payload={"Id": f"c{n}", "Warnings": []})
        api.post(f"{ENGINE}{V}/containers/c{n}/start", status=204)
        api.get(f"{ENGINE}{V}/containers/c{n}/json", payload=inspected(f"c{n}", f"172.18.0.{n}"))
        # The first probe finds the worker still booting; the next one healthy.
        api.get(f"http://172.18.0.{n}:8000/health", status=503)
        api.get(f"http://172.18.0.{n}:8000/health", payload={"status": "ok"})
    backend = make()  # the real HTTP probe, answered by aioresponses

    await backend.scale_up(2)

    creates = api.requests_to("POST", f"{V}/containers/create")
    names = [c.query["name"] for c in creates]
    assert len(set(names)) == 2
    assert all(re.fullmatch(r"blue-worker-[0-9a-f]{8}", n) for n in names)
    for create, name in zip(creates, names, strict=True):
        body = create.body
        assert body["Image"] == "graphfleet:test"
        assert body["Labels"] == {"graphfleet.role": "worker", "graphfleet.fleet": "blue"}
        assert body["HostConfig"]["NetworkMode"] == "fleet-net"
        env = dict(item.split("=", 1) for item in body["Env"])
        assert env == {
            "WORKER_STORE": "sqlite:///data/runs.db",  # passed through
            "WORKER_HOST": "0.0.0.0",
            "WORKER_PORT": "8000",  # ours wins over the pass-through
            "WORKER_ADVERTISE_URL": f"http://{name}:8000",
            "WORKER_INSTANCE_ID": name,
        }
    for n in (1, 2):
        api.only("POST", f"{V}/containers/c{n}/start")
        assert [s.url.host for s in api.sent if s.path == "/health"].count(f"172.18.0.{n}") == 2
    assert {i.id: i.url for i in registry.snapshot.instances} == {
        name: f"http://{name}:8000" for name in names
    }
    assert all(backend.owns(i) for i in registry.snapshot.instances)


async def test_a_worker_that_never_gets_healthy_is_removed_not_registered(
    api: HttpApi, make: Any, registry: Registry
) -> None:
    api.post(CREATE, payload={"Id": "c1"})
    api.post(f"{ENGINE}{V}/containers/c1/start", status=204)
    api.get(f"{ENGINE}{V}/containers/c1/json", payload=inspected("c1", "172.18.0.9"))
    stop = re.compile(re.escape(f"{ENGINE}{V}/containers/") + r"blue-worker-\w+/stop\?t=5")
    remove = re.compile(re.escape(f"{ENGINE}{V}/containers/") + r"blue-worker-\w+\?force=1")
    api.post(stop, status=204)
    api.delete(remove, status=204)
    probed: list[str] = []

    async def never_healthy(url: str) -> bool:
        probed.append(url)
        return False

    backend = make(probe=never_healthy, start_timeout_s=0.03, stop_timeout_s=5)
    api.get(re.compile(re.escape(f"{ENGINE}{V}/containers/json") + r"\?.*"), payload=[])

    with pytest.raises(
        BackendError, match=re.escape("did not answer http://172.18.0.9:8000/health")
    ):
        await backend.scale_up(1)

    name = api.only("POST", f"{V}/containers/create").query["name"]
    assert probed
    assert set(probed) == {"http://172.18.0.9:8000/health"}
    assert api.only("POST", f"{V}/containers/{name}/stop").query == {"t": "5"}
    assert api.only("DELETE", f"{V}/containers/{name}").query == {"force": "1"}
    assert registry.snapshot.instances == ()
    assert await backend.current() == 0  # no longer counted as starting


async def test_a_missing_image_is_a_backend_error(
    api: HttpApi, make: Any, registry: Registry
) -> None:
    api.post(CREATE, status=404, payload={"message": "No such image: graphfleet:test"})

    with pytest.raises(BackendError, match="No such image: graphfleet:test"):
        await make().scale_up(1)

    assert registry.snapshot.instances == ()
    assert [s.path for s in api.sent] == [f"{V}/containers/create"]  # nothing started


@pytest.mark.parametrize("stop_status", [204, 304, 404])
async def test_scale_down_stops_removes_and_forgets_the_victims(
    api: HttpApi, make: Any, registry: Registry, stop_status: int
) -> None:
    api.get(
        re.compile(re.escape(f"{ENGINE}{V}/containers/json") + r"\?.*"), payload=listed("w1", "w2")
    )
    backend = make(stop_timeout_s=7)
    await backend.start()
    victim = registry.get("w1")
    assert victim is not None
    # 304: already stopped; 404: already gone. Either way the container is done with.
    api.post(
        f"{ENGINE}{V}/containers/w1/stop?t=7",
        status=stop_status,
        payload={"message": "No such container: w1"} if stop_status == 404 else None,
    )
    api.delete(f"{ENGINE}{V}/containers/w1?force=1", status=204)

    await backend.scale_down([victim])

    api.only("POST", f"{V}/containers/w1/stop")
    api.only("DELETE", f"{V}/containers/w1")
    assert [i.id for i in registry.snapshot.instances] == ["w2"]
    assert not backend.owns(victim)


async def test_a_failed_stop_keeps_the_victim_registered(
    api: HttpApi, make: Any, registry: Registry
) -> None:
    api.get(re.compile(re.escape(f"{ENGINE}{V}/containers/json") + r"\?.*"), payload=listed("w1"))
    backend = make(stop_timeout_s=7)
    await backend.start()
    api.post(f"{ENGINE}{V}/containers/w1/stop?t=7", status=500, payload={"message": "disk full"})
    victim = registry.get("w1")
    assert victim is not None

    with pytest.raises(BackendError, match=r"stopping container w1 failed: \[500\] disk full"):
        await backend.scale_down([victim])

    assert registry.get("w1") is not None
    assert backend.owns(victim)
    assert not api.requests_to("DELETE", f"{V}/containers/w1")


async def test_an_unreachable_engine_is_a_backend_error(api: HttpApi, make: Any) -> None:
    # No route mocked: aioresponses refuses the connection.
    with pytest.raises(BackendError, match="listing the worker containers failed"):
        await make().current()
    assert len(api.sent) == 1
