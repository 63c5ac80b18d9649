"""The admin API refuses what a hostile web page or a rebinding DNS name would send, and instance
URLs into link-local or metadata ranges — on a real LB over loopback, with no token (the case
where nothing else protects it)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from lb.app import LoadBalancer
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB


def admin(balancer: LoadBalancer, path: str) -> str:
    return f"http://127.0.0.1:{balancer.admin_port}{path}"


async def _instance_urls(client: aiohttp.ClientSession, balancer: LoadBalancer) -> list[str]:
    async with client.get(admin(balancer, "/admin/instances")) as response:
        assert response.status == 200
        return sorted(i["url"] for i in (await response.json())["instances"])


CROSS_SITE = [
    # A form or fetch from another site: text/plain needs no CORS preflight.
    (
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        b'{"url": "http://127.0.0.1:1"}',
        403,
        "forbidden_origin",
    ),
    # The same body from a page that passes the Origin check still has to say JSON.
    (
        {"Content-Type": "text/plain"},
        b'{"url": "http://127.0.0.1:1"}',
        415,
        "unsupported_media_type",
    ),
    ({}, b'{"url": "http://127.0.0.1:1"}', 415, "unsupported_media_type"),
    # DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends it as Host.
    (
        {"Content-Type": "application/json", "Host": "rebind.evil.example:8081"},
        b'{"url": "http://127.0.0.1:1"}',
        403,
        "forbidden_host",
    ),
    ({"Content-Type": "application/json", "Origin": "null"}, b"{}", 403, "forbidden_origin"),
]


@pytest.mark.parametrize(("headers", "body", "status", "code"), CROSS_SITE)
async def test_cross_site_and_rebound_writes_are_refused_and_change_nothing(
    start_lb: StartLB,
    client: aiohttp.ClientSession,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    balancer = await start_lb([])
    request_headers: dict[str, Any] = {**headers}
    if "Content-Type" not in headers:
        # aiohttp would add application/octet-stream; send none at all.
        request_headers["Content-Type"] = ""
    async with client.post(
        admin(balancer, "/admin/instances"), data=body, headers=request_headers
    ) as response:
        assert response.status == status
        assert (await response.json())["error"]["code"] == code
    assert await _instance_urls(client, balancer) == []


async def test_a_form_post_without_a_body_cannot_drain(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    (instance,) = await _instance_urls(client, balancer)
    assert balancer.components is not None
    (worker,) = balancer.components.registry.snapshot.instances
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client.post(
        admin(balancer, f"/admin/instances/{worker.id}/drain"), headers=form
    ) as r:
        assert r.status == 415
    assert balancer.components.registry.snapshot.instances[0].state == "healthy"
    # What a program sends (no body, no form type) still works.
    async with client.post(admin(balancer, f"/admin/instances/{worker.id}/drain")) as r:
        assert r.status == 200
    assert instance == workers[0].url


async def test_allowed_hosts_and_origins_pass_and_open_endpoints_take_any_host(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([], admin_allowed_hosts="lb.internal, ops.example")
    body = {"url": workers[0].url, "id": "w"}
    headers = {"Host": "lb.internal:8081", "Origin": "https://ops.example"}
    async with client.post(admin(balancer, "/admin/instances"), json=body, headers=headers) as r:
        assert r.status == 201
    for host in (f"127.0.0.1:{balancer.admin_port}", f"localhost:{balancer.admin_port}"):
        async with client.get(admin(balancer, "/admin/instances"), headers={"Host": host}) as r:
            assert r.status == 200
    async with client.get(
        admin(balancer, "/admin/instances"), headers={"Host": "other.example"}
    ) as r:
        assert r.status == 403
    # Probes and scrapers name the LB however they like: the open endpoints stay open.
    async with client.get(admin(balancer, "/health"), headers={"Host": "10.1.2.3:8081"}) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254",
        "http://169.254.169.254:80/",
        "http://100.100.100.200",
        "http://[fe80::1]:8000",
        "http://[fd00:ec2::254]",
        "http://[::ffff:169.254.169.254]",
    ],
)
async def test_instance_urls_into_metadata_ranges_are_refused(
    start_lb: StartLB, client: aiohttp.ClientSession, url: str
) -> None:
    balancer = await start_lb([])
    async with client.post(admin(balancer, "/admin/instances"), json={"url": url}) as r:
        assert r.status == 422
        error = (await r.json())["error"]
    assert error["code"] == "refused_address"
    assert error["field"] == "url"
    assert await _instance_urls(client, balancer) == []


async def test_an_allowed_network_and_loopback_names_are_accepted(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([], instance_allow_networks="169.254.10.0/24", health_timeout_s=0.2)
    localhost_url = workers[0].url.replace("127.0.0.1", "localhost")
    for url in ("http://169.254.10.7:8000", localhost_url):
        async with client.post(admin(balancer, "/admin/instances"), json={"url": url}) as r:
            assert r.status == 201, await r.text()
    assert await _instance_urls(client, balancer) == sorted(
        ["http://169.254.10.7:8000", localhost_url]
    )
