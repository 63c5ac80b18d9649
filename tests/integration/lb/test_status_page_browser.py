"""The status page in a real headless Chromium: sign in, one row per instance with its state
in words, drain from the keyboard and see it through the admin API, screenshots kept under
``test-artifacts/`` (desktop and phone-sized)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from lb.app import LoadBalancer
from tests.chromium import chromium
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB
from tests.support import eventually

TOKEN = "browser-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = "[...document.querySelectorAll('#instances tbody tr')]"


def admin(balancer: LoadBalancer, path: str) -> str:
    return f"http://127.0.0.1:{balancer.admin_port}{path}"


async def _state(client: aiohttp.ClientSession, balancer: LoadBalancer, ident: str) -> str:
    async with client.get(admin(balancer, f"/admin/instances/{ident}"), headers=AUTH) as r:
        return str((await r.json())["state"])


async def test_sign_in_see_the_fleet_and_drain_from_the_keyboard(
    start_lb: StartLB,
    workers: list[FakeWorker],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    balancer = await start_lb(workers, admin_token=TOKEN, status_interval_s=0.2)
    assert balancer.components is not None
    a, b, c = (i.id for i in balancer.components.registry.snapshot.instances)
    async with client.post(admin(balancer, f"/admin/instances/{b}/drain"), headers=AUTH) as r:
        assert r.status == 200
    workers[2].health_status = 500
    await eventually(lambda: _state(client, balancer, c), timeout_s=10)  # answers at all
    await eventually(lambda: _unhealthy(client, balancer, c))
    workers[0].runs_running, workers[0].runs_queued = 2, 1

    async with chromium(tmp_path / "profile") as page:
        await page.resize(1280, 900)
        await page.goto(admin(balancer, "/"))
        # Signed out: nothing but the login form.
        assert await page.evaluate("document.querySelector('#instances') === null")
        assert await page.evaluate("document.activeElement.id") == "token"
        await page.type_text(TOKEN)
        await page.press_enter()
        await page.wait_for(f"document.body.dataset.loaded === '1' && {ROWS}.length === 3")
        await page.wait_for(f"{ROWS}.some(r => r.textContent.includes('2 / 1'))")
        states = await page.evaluate(
            f"Object.fromEntries({ROWS}.map(r => [r.dataset.instance,"
            " r.querySelector('td').textContent]))"
        )
        assert states == {a: "healthy", b: "draining", c: "unhealthy"}
        # Every control has a label the screen reader can say.
        assert await page.evaluate(
            "[...document.querySelectorAll('input, select')].every(e => e.labels.length > 0)"
            " && [...document.querySelectorAll('button')].every(e => e.textContent.trim()"
            " || e.getAttribute('aria-label'))"
        )
        assert await page.evaluate("document.getElementById('announce').getAttribute('aria-live')")

        await page.evaluate(f"document.querySelector('button[aria-label=\"Drain {a}\"]').focus()")
        await page.press_enter()

        async def drained() -> bool:
            return await _state(client, balancer, a) == "draining"

        await eventually(drained)
        await page.wait_for(
            f"{ROWS}.find(r => r.dataset.instance === {a!r}).querySelector('td').textContent"
            " === 'draining'"
        )
        await page.wait_for("document.getElementById('announce').textContent.includes('draining')")
        desktop = await page.screenshot("status-page.png")
        await page.resize(390, 844, mobile=True)
        phone = await page.screenshot("status-page-phone.png")
        # On a phone the table becomes cards: nothing scrolls sideways.
        assert await page.evaluate("document.documentElement.scrollWidth <= 390")
    assert desktop.stat().st_size > 10_000
    assert phone.stat().st_size > 10_000


async def _unhealthy(client: aiohttp.ClientSession, balancer: LoadBalancer, ident: str) -> bool:
    return await _state(client, balancer, ident) == "unhealthy"
