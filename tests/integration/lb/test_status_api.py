"""The status page's endpoints on a real LB: the login, the session, CSRF, the JSON document,
and bad input (4xx JSON, nothing changed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lb.app import LoadBalancer
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB
from tests.support import eventually

TOKEN = "page-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def admin(balancer: LoadBalancer, path: str) -> str:
    return f"http://127.0.0.1:{balancer.admin_port}{path}"


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies, as a browser does (``unsafe``: the LB is on an IP)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _login(browser: aiohttp.ClientSession, balancer: LoadBalancer) -> str:
    async with browser.post(admin(balancer, "/status/login"), json={"token": TOKEN}) as r:
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        return str((await r.json())["csrf_token"])


async def _state(client: aiohttp.ClientSession, balancer: LoadBalancer, ident: str) -> Any:
    async with client.get(admin(balancer, f"/admin/instances/{ident}"), headers=AUTH) as r:
        return (await r.json())["state"]


async def _error(response: aiohttp.ClientResponse, status: int, code: str) -> None:
    assert response.status == status
    assert response.content_type == "application/json"
    assert (await response.json())["error"]["code"] == code


async def test_without_a_session_only_the_login_form_and_401(
    start_lb: StartLB, workers: list[FakeWorker], browser: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)
    async with browser.get(admin(balancer, "/")) as r:
        assert r.status == 200
        page = await r.text()
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert r.headers["X-Frame-Options"] == "DENY"
    assert 'id="login"' in page
    assert "instances" not in page.lower()
    async with browser.get(admin(balancer, "/admin/status")) as r:
        await _error(r, 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"token": "wrong"}', 401, "unauthorized"),
        (b'{"token": ""}', 401, "unauthorized"),
        (b"{not json", 400, "invalid_json"),
        (b'["token"]', 422, "invalid_field"),
        (b'{"token": 123}', 422, "invalid_field"),
        (b"{}", 422, "invalid_field"),
        (b'{"token": "' + b"x" * 5000 + b'"}', 413, "body_too_large"),
    ],
)
async def test_bad_logins_are_refused_and_create_no_session(
    start_lb: StartLB,
    workers: list[FakeWorker],
    browser: aiohttp.ClientSession,
    body: bytes,
    status: int,
    code: str,
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)
    headers = {"Content-Type": "application/json"}
    async with browser.post(admin(balancer, "/status/login"), data=body, headers=headers) as r:
        await _error(r, status, code)
        assert "Set-Cookie" not in r.headers
    async with browser.get(admin(balancer, "/admin/status")) as r:
        await _error(r, 401, "unauthorized")


async def test_a_session_reads_the_status_and_acts_with_its_csrf_token(
    start_lb: StartLB,
    workers: list[FakeWorker],
    browser: aiohttp.ClientSession,
    client: aiohttp.ClientSession,
) -> None:
    balancer = await start_lb(workers[:2], admin_token=TOKEN)
    csrf = await _login(browser, balancer)
    async with browser.get(admin(balancer, "/")) as r:
        page = await r.text()
    assert f'<meta name="csrf-token" content="{csrf}">' in page
    async with browser.get(admin(balancer, "/admin/status")) as r:
        assert r.status == 200
        doc = await r.json()
    assert [i["state"] for i in doc["instances"]] == ["healthy", "healthy"]
    assert doc["strategy"] == "least_loaded"
    victim = doc["instances"][0]["id"]
    drain = admin(balancer, f"/admin/instances/{victim}/drain")
    async with browser.post(drain) as r:
        await _error(r, 403, "csrf_failed")
    async with browser.post(drain, headers={"X-CSRF-Token": csrf + "x"}) as r:
        await _error(r, 403, "csrf_failed")
    assert await _state(client, balancer, victim) == "healthy"
    async with browser.post(drain, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200
    assert await _state(client, balancer, victim) == "draining"
    # A wrong bearer token is refused even with a session: the header decides.
    async with browser.get(
        admin(balancer, "/admin/status"), headers={"Authorization": "Bearer nope"}
    ) as r:
        await _error(r, 401, "unauthorized")
    async with browser.post(admin(balancer, "/status/logout")) as r:
        await _error(r, 403, "csrf_failed")
    async with browser.post(admin(balancer, "/status/logout"), headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200
    async with browser.get(admin(balancer, "/admin/status")) as r:
        await _error(r, 401, "unauthorized")


async def test_oversized_and_invalid_actions_change_nothing(
    start_lb: StartLB, workers: list[FakeWorker], browser: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)
    csrf = {"X-CSRF-Token": await _login(browser, balancer)}
    strategy = admin(balancer, "/admin/strategy")
    huge = b'{"strategy": "random", "pad": "' + b"x" * (70 * 1024) + b'"}'
    json_type = {**csrf, "Content-Type": "application/json"}
    async with browser.put(strategy, data=huge, headers=json_type) as r:
        assert r.status == 413
    async with browser.put(strategy, json={"strategy": "fastest"}, headers=csrf) as r:
        await _error(r, 422, "invalid_field")
    async with browser.get(admin(balancer, "/admin/status")) as r:
        assert (await r.json())["strategy"] == "least_loaded"
    async with browser.put(strategy, json={"strategy": "random"}, headers=csrf) as r:
        assert r.status == 200
    async with browser.get(admin(balancer, "/admin/status"), headers=AUTH) as r:
        assert (await r.json())["strategy"] == "random"


async def test_without_a_token_the_page_is_open_like_the_admin_api(
    start_lb: StartLB, workers: list[FakeWorker], browser: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    async with browser.get(admin(balancer, "/")) as r:
        page = await r.text()
    assert '<meta name="csrf-token" content="">' in page
    assert 'id="instances"' in page
    async with browser.post(admin(balancer, "/status/login"), json={"token": "x"}) as r:
        await _error(r, 409, "no_token")
    async with browser.get(admin(balancer, "/admin/status")) as r:
        ident = (await r.json())["instances"][0]["id"]
    async with browser.post(admin(balancer, f"/admin/instances/{ident}/drain")) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "draining"


async def test_assets_come_from_the_package(
    start_lb: StartLB, workers: list[FakeWorker], browser: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)
    for name, kind in (("status.js", "text/javascript"), ("status.css", "text/css")):
        async with browser.get(admin(balancer, f"/status/assets/{name}")) as r:
            assert r.status == 200
            assert r.content_type == kind
            # Nothing loaded from the network: the only URL is the SVG namespace's name.
            assert "http" not in (await r.text()).replace("http://www.w3.org/2000/svg", "")
    async with browser.get(admin(balancer, "/status/assets/..%2Fviews.py")) as r:
        await _error(r, 404, "not_found")


async def test_the_document_counts_traffic_and_the_runs_workers_report(
    start_lb: StartLB,
    workers: list[FakeWorker],
    client: aiohttp.ClientSession,
) -> None:
    workers[0].runs_running, workers[0].runs_queued = 3, 1
    balancer = await start_lb(workers[:2], admin_token=TOKEN, status_interval_s=0.05)
    proxy = f"http://127.0.0.1:{balancer.proxy_port}"
    for _ in range(5):
        async with client.get(proxy + "/echo") as r:
            assert r.status == 200

    async def document() -> dict[str, Any]:
        async with client.get(admin(balancer, "/admin/status"), headers=AUTH) as r:
            return dict(await r.json())

    async def reported() -> bool:
        runs = [i["runs"] for i in (await document())["instances"]]
        return {"running": 3, "queued": 1} in runs

    await eventually(reported)
    workers[0].runs_ended = {"success": 4, "error": 1}

    async def ended() -> bool:
        return (await document())["runs"]["ended"] == {"success": 4, "error": 1}

    await eventually(ended)
    doc = await document()
    assert doc["runs"]["running"] == 3
    assert any(p["requests_per_s"] is not None for p in doc["history"]["points"])
    served = [i for i in doc["instances"] if i["requests_per_s"]]
    assert served
    assert all(i["p50_ms"] is not None and i["error_ratio"] == 0 for i in served)


async def test_a_chunked_oversized_login_is_refused(
    start_lb: StartLB, workers: list[FakeWorker], browser: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], admin_token=TOKEN)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size shows as it comes
        yield b'{"token": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    async with browser.post(admin(balancer, "/status/login"), data=chunks()) as r:
        await _error(r, 413, "body_too_large")
        assert "Set-Cookie" not in r.headers
