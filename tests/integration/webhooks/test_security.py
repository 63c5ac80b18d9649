"""Where webhooks may go: private, loopback and metadata addresses are refused when a hook
is registered or a run names one, and again at delivery when a DNS answer changed since."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from langgraph_sdk.errors import UnprocessableEntityError

from tests.integration.webhooks.conftest import FAST, Receiver
from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration

# Generous: the machine running the suite may be busy; a pass is usually far quicker.
WAIT_S = 30.0


class FakeDns:
    """A resolver whose answers the test changes (``answers[name] = [address]``)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


async def _post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "private"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://metadata.test/computeMetadata", "metadata"),
        ("http://intranet.test/hook", "private"),
        ("http://nowhere.test/hook", "cannot resolve"),
        ("ftp://example.test/hook", "absolute http(s)"),
        ("/relative", "absolute http(s)"),
    ],
)
async def test_hooks_on_non_public_addresses_are_refused(
    make_worker: WorkerFactory, url: str, why: str
) -> None:
    dns = FakeDns()
    dns.answers |= {"metadata.test": ["169.254.169.254"], "intranet.test": ["8.8.8.8", "10.0.0.7"]}
    worker = await make_worker(webhook_allow_networks=[], webhook_resolve=dns)
    async with aiohttp.ClientSession() as http:
        body = {"url": url, "events": ["graph.completed"]}
        status, doc = await _post(http, f"{worker.url}/webhooks", body)
        async with http.get(f"{worker.url}/webhooks") as response:
            assert await response.json() == []
    assert status == 422
    assert doc["error"]["code"] == "invalid_webhook"
    assert why in doc["error"]["message"]


async def test_a_run_webhook_on_a_private_address_is_refused(make_worker: WorkerFactory) -> None:
    worker = await make_worker(webhook_allow_networks=[])
    sdk = worker.client()
    try:
        thread = await sdk.threads.create()
        with pytest.raises(UnprocessableEntityError, match="loopback"):
            await sdk.runs.create(
                thread["thread_id"], "pipeline", input={}, webhook="http://127.0.0.1:1/x"
            )
        assert await sdk.runs.list(thread["thread_id"]) == []
    finally:
        await sdk.aclose()


async def test_a_dns_answer_that_turns_private_is_refused_at_delivery(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    dns = FakeDns()
    dns.answers["hooks.test"] = ["127.0.0.1"]
    worker = await make_worker(**FAST, webhook_allow_networks=["127.0.0.1/32"], webhook_resolve=dns)
    port = receiver.url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        body = {"url": f"http://hooks.test:{port}/hook", "events": ["graph.completed"]}
        status, hook = await _post(http, f"{worker.url}/webhooks", body)
        assert status == 201
        dns.answers["hooks.test"] = ["10.9.8.7"]  # rebinding: now it points inside
        await _post(http, f"{worker.url}/runs/wait", {"assistant_id": "pipeline", "input": {}})
        attempts = await _attempts(http, worker, hook["webhook_id"], 1)
        assert attempts[0]["status"] == "failed"  # refused, and not retried
        assert "10.9.8.7 is a private address" in str(attempts[0]["error"])
        assert receiver.seen == []
        # The name is resolved afresh for each attempt: back on an allowed address, it works.
        dns.answers["hooks.test"] = ["127.0.0.1"]
        await _post(http, f"{worker.url}/webhooks/{hook['webhook_id']}/test", None)
        await eventually(lambda: len(receiver.received) == 1, timeout_s=WAIT_S)


async def _attempts(
    http: aiohttp.ClientSession, worker: Worker, hook_id: str, n: int
) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    async def enough() -> bool:
        nonlocal found
        async with http.get(f"{worker.url}/webhooks/{hook_id}/deliveries") as response:
            found = await response.json()
        return len(found) >= n

    await eventually(enough, timeout_s=WAIT_S)
    return found


async def test_redirects_are_not_followed(make_worker: WorkerFactory, receiver: Receiver) -> None:
    receiver.script = [(307, {"Location": f"{receiver.url}/elsewhere"})]
    worker = await make_worker(**FAST)
    async with aiohttp.ClientSession() as http:
        body = {"url": f"{receiver.url}/hook", "events": ["graph.completed"]}
        _, hook = await _post(http, f"{worker.url}/webhooks", body)
        await _post(http, f"{worker.url}/runs/wait", {"assistant_id": "pipeline", "input": {}})
        attempts = await _attempts(http, worker, hook["webhook_id"], 1)
    assert (attempts[0]["status"], attempts[0]["status_code"]) == ("failed", 307)
    assert [r.path for r in receiver.seen] == ["/hook"]


async def test_a_hook_failing_for_too_long_is_disabled_and_says_so(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    receiver.script = [(500, {})] * 100
    worker = await make_worker(**FAST, webhook_disable_after_s=0.3)
    async with aiohttp.ClientSession() as http:
        body = {"url": f"{receiver.url}/hook", "events": ["graph.completed"]}
        _, hook = await _post(http, f"{worker.url}/webhooks", body)
        await _post(http, f"{worker.url}/runs/wait", {"assistant_id": "pipeline", "input": {}})
        path = f"{worker.url}/webhooks/{hook['webhook_id']}"

        async def disabled() -> bool:
            async with http.get(path) as response:
                return (await response.json())["enabled"] is False

        await eventually(disabled, timeout_s=WAIT_S)
        async with http.get(path) as response:
            shown = await response.json()
        async with http.patch(path, json={"enabled": True}) as response:
            enabled = await response.json()
    assert "disabled after failing" in shown["disabled_reason"]
    assert "HTTP 500" in shown["disabled_reason"]
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "https://8.8.8.8/h", "events": ["graph.exploded"]}, "invalid_request"),
        ({"url": "https://8.8.8.8/h", "events": []}, "invalid_request"),
        ({"url": "https://8.8.8.8/h", "events": ["graph.failed"], "x": 1}, "unsupported_field"),
        (
            {"url": "https://8.8.8.8/h", "events": ["graph.failed"], "secret": "s"},
            "invalid_request",
        ),
        (
            {"url": "https://8.8.8.8/h", "events": ["graph.failed"], "headers": {"Host": "a"}},
            "invalid_request",
        ),
        (
            {"url": "https://8.8.8.8/h", "events": ["graph.failed"], "headers": {"a": "b\r\nc"}},
            "invalid_request",
        ),
        ({"events": ["graph.failed"]}, "invalid_request"),
        ([1, 2], "invalid_request"),
    ],
)
async def test_bad_hook_bodies_are_refused_whole(
    make_worker: WorkerFactory, body: object, code: str
) -> None:
    worker = await make_worker()
    async with aiohttp.ClientSession() as http:
        status, doc = await _post(http, f"{worker.url}/webhooks", body)
        async with http.post(f"{worker.url}/webhooks", data=b"{not json") as response:
            assert response.status == 422  # invalid JSON, as on every LangGraph-style route
        async with http.get(f"{worker.url}/webhooks") as response:
            assert await response.json() == []
    assert (status, doc["error"]["code"]) == (422, code)


async def test_hook_lifecycle_and_unknown_ids(make_worker: WorkerFactory) -> None:
    worker = await make_worker()
    async with aiohttp.ClientSession() as http:
        body = {"url": "https://8.8.8.8/h", "events": ["graph.failed"], "description": "d"}
        status, hook = await _post(http, f"{worker.url}/webhooks", body)
        path = f"{worker.url}/webhooks/{hook['webhook_id']}"
        async with http.patch(path, json={"events": ["graph.started"], "enabled": False}) as r:
            patched = await r.json()
        async with http.get(f"{path}/deliveries?limit=0") as r:
            assert r.status == 400
        async with http.delete(path) as r:
            assert r.status == 204
        for method in ("GET", "DELETE", "PATCH"):
            async with http.request(method, path, json={}) as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "webhook_not_found"
    assert status == 201
    assert (patched["events"], patched["enabled"], patched["description"]) == (
        ["graph.started"],
        False,
        "d",
    )
