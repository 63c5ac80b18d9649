"""Webhook delivery end to end: registered hooks, configured hooks and a run's own webhook
reach a real receiver on loopback, signed per Standard Webhooks, retried as promised."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

import aiohttp
import pytest
from standardwebhooks import Webhook

from tests.integration.webhooks.conftest import FAST, Received, Receiver
from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration

# Generous: the machine running the suite may be busy; a pass is usually far quicker.
WAIT_S = 30.0


async def _hook(http: aiohttp.ClientSession, worker: Worker, **body: object) -> dict[str, str]:
    async with http.post(f"{worker.url}/webhooks", json=body) as response:
        assert response.status == 201, await response.text()
        created: dict[str, str] = await response.json()
        return created


async def _run(http: aiohttp.ClientSession, worker: Worker, **extra: object) -> dict[str, str]:
    """A stateless run waited for to its end (its body read: leaving earlier would cancel
    it); its thread, named by the answer's Content-Location (the thread is gone by then)."""
    body = {"assistant_id": "pipeline", "input": {}, **extra}
    async with http.post(f"{worker.url}/runs/wait", json=body) as response:
        assert response.status == 200, await response.text()
        await response.json()
        location = response.headers["Content-Location"]
    _, threads, thread_id, runs, _ = location.split("/")
    assert (threads, runs) == ("threads", "runs"), location
    return {"thread_id": thread_id}


def stdlib_verify(secret: str, got: Received) -> bool:
    """What a receiver without the library writes: a few lines of stdlib."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, signed + got.body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    return any(
        hmac.compare_digest(expected, sig.partition(",")[2])
        for sig in got.headers["webhook-signature"].split()
    )


async def test_a_registered_hook_gets_signed_events_of_a_run(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    worker = await make_worker(**FAST)
    async with aiohttp.ClientSession() as http:
        hook = await _hook(
            http,
            worker,
            url=f"{receiver.url}/hook",
            events=["graph.started", "graph.completed"],
            headers={"X-Tenant": "acme"},
        )
        secret = hook["secret"]
        assert secret.startswith("whsec_")
        thread = await _run(http, worker)
        await eventually(lambda: len(receiver.at("/hook")) == 2, timeout_s=WAIT_S)
        # The secret is shown once: never again.
        async with http.get(f"{worker.url}/webhooks/{hook['webhook_id']}") as response:
            shown = await response.json()
        async with http.get(f"{worker.url}/webhooks") as response:
            listed = await response.json()
    assert "secret" not in shown
    assert all("secret" not in h for h in listed)
    by_type = {r.json()["event_type"]: r for r in receiver.at("/hook")}
    assert set(by_type) == {"graph.started", "graph.completed"}
    done = by_type["graph.completed"]
    doc = Webhook(secret).verify(done.body, done.headers)
    assert stdlib_verify(secret, done)
    assert stdlib_verify(secret, by_type["graph.started"])
    assert doc["webhook_id"] == hook["webhook_id"]
    assert doc["data"]["thread_id"] == thread["thread_id"]
    assert doc["data"]["status"] == "success"
    assert doc["data"]["values"]["steps"] == ["extract", "transform", "load"]
    assert datetime.fromisoformat(doc["timestamp"])
    assert done.headers["X-Tenant"] == "acme"
    assert done.headers["webhook-id"] != by_type["graph.started"].headers["webhook-id"]


async def test_a_tampered_body_fails_verification(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    worker = await make_worker(**FAST)
    async with aiohttp.ClientSession() as http:
        hook = await _hook(http, worker, url=f"{receiver.url}/hook", events=["graph.completed"])
        await _run(http, worker)
        await eventually(lambda: bool(receiver.at("/hook")), timeout_s=WAIT_S)
    got = receiver.at("/hook")[0]
    forged = Received(got.path, got.body.replace(b"success", b"failure"), got.headers)
    assert stdlib_verify(hook["secret"], got)
    assert not stdlib_verify(hook["secret"], forged)


async def test_a_receiver_failing_its_first_attempts_gets_the_event_after_retries(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    receiver.script = [(503, {}), (500, {})]
    worker = await make_worker(**FAST)
    async with aiohttp.ClientSession() as http:
        hook = await _hook(http, worker, url=f"{receiver.url}/hook", events=["graph.completed"])
        await _run(http, worker)
        await eventually(lambda: bool(receiver.at("/hook")), timeout_s=WAIT_S)

        async def three_attempts() -> list[dict[str, object]]:
            path = f"{worker.url}/webhooks/{hook['webhook_id']}/deliveries"
            async with http.get(path) as response:
                attempts: list[dict[str, object]] = await response.json()
            return attempts

        await eventually(lambda: _len_is(three_attempts(), 3), timeout_s=WAIT_S)
        attempts = await three_attempts()
    ids = {r.headers["webhook-id"] for r in receiver.seen}
    assert len(ids) == 1  # the same event id on every retry: receivers de-duplicate by it
    assert [a["status_code"] for a in reversed(attempts)] == [503, 500, 204]
    assert [a["status"] for a in reversed(attempts)] == ["pending", "pending", "delivered"]
    assert attempts[-1]["next_attempt_at"] is not None


async def _len_is(attempts: object, n: int) -> bool:
    return len(await attempts) == n  # type: ignore[misc]


async def test_429_retry_after_is_honoured(make_worker: WorkerFactory, receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "2"})]
    worker = await make_worker(**FAST | {"webhook_backoff_max_s": 30.0})
    async with aiohttp.ClientSession() as http:
        hook = await _hook(http, worker, url=f"{receiver.url}/hook", events=["graph.completed"])
        await _run(http, worker)
        await eventually(lambda: bool(receiver.at("/hook")), timeout_s=WAIT_S)
        path = f"{worker.url}/webhooks/{hook['webhook_id']}/deliveries"
        async with http.get(path) as response:
            first, second = reversed(await response.json())
    assert (first["status_code"], second["status_code"]) == (429, 204)
    # The retry was scheduled where the receiver asked, not after the 0.05 s backoff.
    wait_s = (
        datetime.fromisoformat(first["next_attempt_at"])
        - datetime.fromisoformat(first["attempted_at"])
    ).total_seconds()
    assert 1.9 <= wait_s <= 2.1
    assert datetime.fromisoformat(second["attempted_at"]) >= datetime.fromisoformat(
        first["next_attempt_at"]
    )


async def test_a_4xx_is_not_retried(make_worker: WorkerFactory, receiver: Receiver) -> None:
    receiver.script = [(410, {})]
    worker = await make_worker(**FAST)
    async with aiohttp.ClientSession() as http:
        hook = await _hook(http, worker, url=f"{receiver.url}/hook", events=["graph.completed"])
        await _run(http, worker)
        path = f"{worker.url}/webhooks/{hook['webhook_id']}/deliveries"

        async def attempts() -> list[dict[str, object]]:
            async with http.get(path) as response:
                found: list[dict[str, object]] = await response.json()
            return found

        await eventually(lambda: _len_is(attempts(), 1), timeout_s=WAIT_S)
        (only,) = await attempts()
        async with http.post(f"{worker.url}/webhooks/{hook['webhook_id']}/test") as response:
            assert response.status == 202
        await eventually(lambda: _len_is(attempts(), 2), timeout_s=WAIT_S)
    assert (only["status"], only["status_code"], only["next_attempt_at"]) == ("failed", 410, None)
    assert len(receiver.seen) == 2
    assert receiver.at("/hook")[0].json()["event_type"] == "webhook.test"


async def test_the_sdk_webhook_field_and_configured_hooks(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    receiver.script = [(500, {})]
    worker = await make_worker(
        **FAST,
        webhook_secret="whsec_" + base64.b64encode(b"k" * 32).decode(),
        webhook_urls=[f"{receiver.url}/configured"],
    )
    sdk = worker.client()
    try:
        thread = await sdk.threads.create()
        run = await sdk.runs.create(
            thread["thread_id"], "pipeline", input={}, webhook=f"{receiver.url}/run"
        )
        await eventually(lambda: bool(receiver.at("/run")), timeout_s=WAIT_S)
        await eventually(lambda: len(receiver.at("/configured")) == 2, timeout_s=WAIT_S)
    finally:
        await sdk.aclose()
    doc = receiver.at("/run")[0].json()
    # LangGraph Platform's shape: the run, its status, values and when it was sent.
    assert doc["run_id"] == run["run_id"]
    assert doc["thread_id"] == thread["thread_id"]
    assert doc["status"] == "success"
    assert doc["values"]["steps"] == ["extract", "transform", "load"]
    assert "webhook_sent_at" in doc
    assert "run_ended_at" in doc
    events = sorted(r.json()["event_type"] for r in receiver.at("/configured"))
    assert events == ["graph.completed", "graph.started"]
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)


async def test_metrics_count_deliveries(make_worker: WorkerFactory, receiver: Receiver) -> None:
    worker = await make_worker(**FAST)
    async with aiohttp.ClientSession() as http:
        await _hook(http, worker, url=f"{receiver.url}/hook", events=["graph.completed"])
        await _run(http, worker)
        await eventually(lambda: bool(receiver.at("/hook")), timeout_s=WAIT_S)

        async def counted() -> bool:
            async with http.get(f"{worker.url}/metrics") as response:
                text = await response.text()
            return (
                'graphfleet_worker_webhook_deliveries_total{event="graph.completed",'
                'outcome="delivered"} 1.0'
                in text
                and "graphfleet_worker_webhook_outbox_size 0.0" in text
            )

        await eventually(counted, timeout_s=WAIT_S)
