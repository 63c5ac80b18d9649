"""The admin API end to end on a real LB: auth, validation, membership, drain, strategy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lb.app import ConfigError, LoadBalancer
from lb.settings import LBSettings
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.support import eventually

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def admin(balancer: LoadBalancer, path: str) -> str:
    return f"http://127.0.0.1:{balancer.admin_port}{path}"


async def _instances(client: aiohttp.ClientSession, balancer: LoadBalancer) -> list[dict[str, Any]]:
    async with client.get(admin(balancer, "/admin/instances"), headers=AUTH) as response:
        assert response.status == 200
        return list((await response.json())["instances"])


async def test_register_heartbeat_get_and_list(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([], admin_token=TOKEN)
    body = {"url": workers[0].url, "id": "w-1", "max_capacity": 4, "weight": 2}
    async with client.post(admin(balancer, "/admin/instances"), json=body, headers=AUTH) as r:
        assert r.status == 201
        created = await r.json()
    assert created["id"] == "w-1"
    assert created["state"] == "healthy"  # checked at once on registration
    assert (created["max_capacity"], created["weight"]) == (4, 2)
    # Registering again is a heartbeat: 200, same instance, capacity updated.
    body["max_capacity"] = 8
    async with client.post(admin(balancer, "/admin/instances"), json=body, headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["max_capacity"] == 8
    async with client.get(admin(balancer, "/admin/instances/w-1"), headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["url"] == workers[0].url
    assert [i["id"] for i in await _instances(client, balancer)] == ["w-1"]
    # And it takes traffic.
    async with client.get(url(balancer, "/echo")) as r:
        assert r.status == 200
        assert r.headers["X-Fleet-Instance"] == "w-1"


BAD_REQUESTS = [
    # (method, path, body or raw bytes, headers, status, code, field)
    ("POST", "/admin/instances", {"url": "http://x:1"}, {}, 401, "unauthorized", None),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1"},
        {"Authorization": "Bearer wrong"},
        401,
        "unauthorized",
        None,
    ),
    ("POST", "/admin/instances", b"{not json", AUTH, 400, "invalid_json", None),
    ("POST", "/admin/instances", b"[1, 2]", AUTH, 400, "invalid_json", None),
    ("POST", "/admin/instances", {"url": "ftp://x:1"}, AUTH, 422, "invalid_field", "url"),
    ("POST", "/admin/instances", {"url": "http://"}, AUTH, 422, "invalid_field", "url"),
    ("POST", "/admin/instances", {"url": 5}, AUTH, 422, "invalid_field", "url"),
    ("POST", "/admin/instances", {}, AUTH, 422, "invalid_field", "url"),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1", "id": "bad id!"},
        AUTH,
        422,
        "invalid_field",
        "id",
    ),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1", "id": "a" * 65},
        AUTH,
        422,
        "invalid_field",
        "id",
    ),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1", "max_capacity": 0},
        AUTH,
        422,
        "invalid_field",
        "max_capacity",
    ),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1", "weight": -2},
        AUTH,
        422,
        "invalid_field",
        "weight",
    ),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1", "weight": True},
        AUTH,
        422,
        "invalid_field",
        "weight",
    ),
    (
        "POST",
        "/admin/instances",
        {"url": "http://x:1", "colour": "red"},
        AUTH,
        422,
        "unknown_field",
        "colour",
    ),
    ("POST", "/admin/instances", b"{" + b" " * 70_000 + b"}", AUTH, 413, "body_too_large", None),
    ("GET", "/admin/instances/nope", None, AUTH, 404, "not_found", None),
    ("DELETE", "/admin/instances/nope", None, AUTH, 404, "not_found", None),
    ("POST", "/admin/instances/nope/drain", None, AUTH, 404, "not_found", None),
    ("POST", "/admin/instances/nope/enable", None, AUTH, 404, "not_found", None),
    (
        "POST",
        "/admin/instances",
        {"url": "http://127.0.0.1:1", "id": "existing"},
        AUTH,
        409,
        "conflict",
        "id",
    ),
    ("PUT", "/admin/strategy", {"strategy": "fastest"}, AUTH, 422, "invalid_field", "strategy"),
    ("PUT", "/admin/strategy", {"strategy": "random"}, {}, 401, "unauthorized", None),
    ("GET", "/admin/instances", None, {"Authorization": TOKEN}, 401, "unauthorized", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code", "field"), BAD_REQUESTS
)
async def test_bad_requests_are_refused_and_change_nothing(
    start_lb: StartLB,
    workers: list[FakeWorker],
    client: aiohttp.ClientSession,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    balancer = await start_lb([], admin_token=TOKEN)
    async with client.post(
        admin(balancer, "/admin/instances"),
        json={"url": workers[0].url, "id": "existing"},
        headers=AUTH,
    ) as r:
        assert r.status == 201
    before = await _instances(client, balancer)
    assert balancer.components is not None
    strategy_before = balancer.components.router.strategy.name
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
        kwargs["headers"] = {**headers, "Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    async with client.request(method, admin(balancer, path), **kwargs) as response:
        assert response.status == status
        error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]
    assert error.get("field") == field
    assert await _instances(client, balancer) == before
    assert balancer.components.router.strategy.name == strategy_before


async def test_admin_is_refused_on_a_public_address_without_a_token(tmp_path: Path) -> None:
    balancer = LoadBalancer(
        LBSettings(port=0, admin_port=0, admin_host="0.0.0.0", data_dir=tmp_path)
    )
    with pytest.raises(ConfigError, match="LB_ADMIN_TOKEN"):
        await balancer.start()


async def test_open_endpoints_need_no_token(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)
    for path in ("/health", "/ready", "/metrics"):
        async with client.get(admin(balancer, path)) as response:
            assert response.status == 200, path


async def test_ready_is_503_without_a_routable_instance(
    start_lb: StartLB, client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([])
    async with client.get(admin(balancer, "/ready")) as response:
        assert response.status == 503
        assert (await response.json())["ready"] is False


async def test_drain_then_delete_while_a_long_request_is_in_flight(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([], admin_token=TOKEN, strategy="round_robin")
    for fake in workers[:2]:
        async with client.post(
            admin(balancer, "/admin/instances"),
            json={"url": fake.url, "id": fake.name},
            headers=AUTH,
        ) as r:
            assert r.status == 201
    # Pin a long request on "a" via its thread, then drain and delete "a".
    long_request = asyncio.create_task(
        client.get(url(balancer, "/slow?s=1.0"), headers={"X-Thread-ID": "t"})
    )
    await eventually(lambda: workers[0].started + workers[1].started == 1)
    busy = "a" if workers[0].started else "b"
    idle = "b" if busy == "a" else "a"
    async with client.post(admin(balancer, f"/admin/instances/{busy}/drain"), headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "draining"
    async with client.delete(admin(balancer, f"/admin/instances/{busy}"), headers=AUTH) as r:
        assert r.status == 202
        assert (await r.json())["pending_removal"] is True
    # No new request goes to the draining instance...
    for _ in range(10):
        async with client.get(url(balancer, "/echo")) as r:
            assert r.headers["X-Fleet-Instance"] == idle
    # ...the one in flight completes...
    response = await long_request
    assert response.status == 200
    assert response.headers["X-Fleet-Instance"] == busy
    response.release()
    # ...and then the instance leaves.
    assert balancer.components is not None
    registry = balancer.components.registry
    await eventually(lambda: registry.get(busy) is None, timeout_s=5)
    assert [i["id"] for i in await _instances(client, balancer)] == [idle]


async def test_enable_undoes_a_drain(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([], admin_token=TOKEN)
    async with client.post(
        admin(balancer, "/admin/instances"), json={"url": workers[0].url, "id": "w"}, headers=AUTH
    ) as r:
        assert r.status == 201
    async with client.post(admin(balancer, "/admin/instances/w/drain"), headers=AUTH) as r:
        assert (await r.json())["state"] == "draining"
    async with client.get(url(balancer, "/echo")) as r:
        assert r.status == 503  # nothing routable while drained
    # A heartbeat does not undo a drain; enable does.
    async with client.post(
        admin(balancer, "/admin/instances"), json={"url": workers[0].url, "id": "w"}, headers=AUTH
    ) as r:
        assert (await r.json())["state"] == "draining"
    async with client.post(admin(balancer, "/admin/instances/w/enable"), headers=AUTH) as r:
        assert (await r.json())["state"] == "healthy"
    async with client.get(url(balancer, "/echo")) as r:
        assert r.status == 200


async def test_strategy_switches_at_run_time(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, admin_token=TOKEN)
    async with client.get(admin(balancer, "/admin/strategy"), headers=AUTH) as r:
        assert await r.json() == {"strategy": "least_loaded"}
    async with client.put(
        admin(balancer, "/admin/strategy"), json={"strategy": "round_robin"}, headers=AUTH
    ) as r:
        assert r.status == 200
    seen = []
    for _ in range(6):
        async with client.get(url(balancer, "/echo")) as r:
            seen.append((await r.json())["worker"])
    assert sorted(seen) == ["a", "a", "b", "b", "c", "c"]
    assert seen[:3] == seen[3:]  # a rotation


async def test_registered_instances_survive_a_restart(
    workers: list[FakeWorker], client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    settings = LBSettings(
        port=0, admin_port=0, admin_token=TOKEN, data_dir=tmp_path, health_interval_s=0.1
    )
    first = LoadBalancer(settings)
    await first.start()
    async with client.post(
        admin(first, "/admin/instances"),
        json={"url": workers[0].url, "id": "kept", "weight": 3},
        headers=AUTH,
    ) as r:
        assert r.status == 201
    async with client.post(admin(first, "/admin/instances/kept/drain"), headers=AUTH) as r:
        assert r.status == 200
    await first.stop()
    second = LoadBalancer(settings)
    await second.start()
    try:
        instances = await _instances(client, second)
        assert [(i["id"], i["url"], i["weight"], i["state"]) for i in instances] == [
            ("kept", workers[0].url, 3, "draining")
        ]
    finally:
        await second.stop()


async def test_a_corrupt_state_file_is_set_aside(
    start_lb: StartLB, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    state = tmp_path / "lb" / "registry.json"
    state.parent.mkdir(parents=True)
    state.write_text("{half a file")
    balancer = await start_lb([])
    assert await _instances(client, balancer) == []
    assert (tmp_path / "lb" / "registry.json.corrupt").read_text() == "{half a file"


async def test_silent_failing_instances_expire_after_the_ttl(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN, instance_ttl_s=0.5, health_fall=1)
    async with client.post(
        admin(balancer, "/admin/instances"),
        json={"url": workers[1].url, "id": "gone"},
        headers=AUTH,
    ) as r:
        assert r.status == 201
    assert balancer.components is not None
    registry = balancer.components.registry
    await workers[1].stop()
    await eventually(lambda: registry.get("gone") is None, timeout_s=5)
    # The static instance is never expired, whatever its health and silence.
    await workers[0].stop()
    static = registry.snapshot.instances[0]
    await eventually(
        lambda: (
            registry.snapshot.instances[0].state == "unhealthy"
            and registry.now() - static.last_seen_at > 0.5
        )
    )
    balancer.components.membership.sweep()
    assert [i.id for i in registry.snapshot.instances] == [static.id]


async def test_a_drain_that_outlives_the_drain_timeout_removes_the_instance(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([], admin_token=TOKEN, drain_timeout_s=0.3)
    async with client.post(
        admin(balancer, "/admin/instances"), json={"url": workers[0].url, "id": "w"}, headers=AUTH
    ) as r:
        assert r.status == 201
    stuck = asyncio.create_task(client.get(url(balancer, "/slow?s=3")))
    await eventually(lambda: workers[0].started == 1)
    async with client.delete(admin(balancer, "/admin/instances/w"), headers=AUTH) as r:
        assert r.status == 202
    assert balancer.components is not None
    registry = balancer.components.registry
    await eventually(lambda: registry.get("w") is None, timeout_s=3)
    # Removal from the registry does not cut the request already in flight.
    response = await stuck
    assert response.status == 200
    response.release()
