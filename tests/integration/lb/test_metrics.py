"""/metrics on the admin port, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio

import aiohttp
import structlog
from prometheus_client.parser import text_string_to_metric_families

from lb.app import LoadBalancer
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.integration.lb.test_engine_review import raw_worker
from tests.support import eventually


async def _scrape(client: aiohttp.ClientSession, balancer: LoadBalancer) -> dict[tuple, float]:
    async with client.get(f"http://127.0.0.1:{balancer.admin_port}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_count_known_traffic(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:2], strategy="round_robin", admin_token="t")
    assert balancer.components is not None
    ids = [i.id for i in balancer.components.registry.snapshot.instances]
    for _ in range(10):
        async with client.get(url(balancer, "/echo")) as response:
            assert response.status == 200
    for _ in range(4):
        async with client.post(url(balancer, "/status/404")) as response:
            assert response.status == 404
    await workers[1].stop()
    for _ in range(2):  # round robin: one of the two goes to b, is refused, is retried on a
        async with client.get(url(balancer, "/echo")) as response:
            assert response.status == 200
    async with client.get(f"http://127.0.0.1:{balancer.admin_port}/admin/instances") as r:
        assert r.status == 401

    m = await _scrape(client, balancer)
    p = "graphfleet_lb_"
    get_2xx = sum(
        m.get(
            (f"{p}requests_total", (("instance", i), ("method", "GET"), ("status_class", "2xx"))), 0
        )
        for i in ids
    )
    assert get_2xx == 12
    post_4xx = sum(
        m.get(
            (f"{p}requests_total", (("instance", i), ("method", "POST"), ("status_class", "4xx"))),
            0,
        )
        for i in ids
    )
    assert post_4xx == 4
    durations = sum(
        m.get((f"{p}request_duration_seconds_count", (("instance", i),)), 0) for i in ids
    )
    assert durations == 16
    assert m[(f"{p}retries_total", ())] == 1
    assert m[(f"{p}instances", ())] == 2
    for i in ids:
        assert m[(f"{p}inflight_requests", (("instance", i),))] == 0
        assert m[(f"{p}instance_state", (("instance", i), ("state", "healthy")))] in (0, 1)
    assert m[(f"{p}queue_length", ())] == 0
    assert any(k[0] == f"{p}health_checks_total" and v > 0 for k, v in m.items())
    assert m[(f"{p}health_check_duration_seconds_count", ())] > 0
    assert (
        m[
            (
                f"{p}admin_requests_total",
                (("operation", "GET /admin/instances"), ("outcome", "unauthorized")),
            )
        ]
        == 1
    )
    assert m[(f"{p}ejections_total", ())] == 0


async def test_lb_made_503s_are_counted_by_reason(
    start_lb: StartLB, client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb([])
    for _ in range(3):
        async with client.get(url(balancer, "/x")) as response:
            assert response.status == 503
    m = await _scrape(client, balancer)
    assert m[("graphfleet_lb_rejected_requests_total", (("reason", "no_healthy_instances"),))] == 3


async def test_a_response_cut_by_the_worker_is_counted_and_logged_as_aborted(
    start_lb: StartLB, client: aiohttp.ClientSession
) -> None:
    async def die_mid_body(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # A worker killed while a run's result streams: a 200 is out, the body never ends.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with raw_worker(die_mid_body) as worker:
        balancer = await start_lb([worker], access_log=True)
        with structlog.testing.capture_logs() as logs:
            reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
            try:
                writer.write(b"POST /runs/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                async with asyncio.timeout(10):
                    received = await reader.read()
            finally:
                writer.close()
            await eventually(lambda: any(e.get("event") == "request" for e in logs))
        samples = await _scrape(client, balancer)
    assert received.startswith(b"HTTP/1.1 200")
    assert received.endswith(b"x" * 10)  # the client saw the cut
    (line,) = [e for e in logs if e.get("event") == "request"]
    assert line["outcome"] == "aborted"
    assert line["reason"].startswith("upstream_broke_off")
    assert line["status"] == 200
    by_class = {
        dict(labels)["status_class"]: value
        for (name, labels), value in samples.items()
        if name == "graphfleet_lb_requests_total"
    }
    assert by_class == {"aborted": 1.0}
