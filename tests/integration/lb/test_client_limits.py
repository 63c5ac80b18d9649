"""The proxy port's limits on clients and what it tells workers about them: the head timeout
(408), the connection cap (the admin port keeps answering), and forwarding headers a client
cannot forge unless it is a trusted proxy. Raw sockets against real servers on loopback."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration.lb.conftest import StartLB
from tests.integration.lb.test_engine_review import raw_worker
from tests.support import eventually

pytestmark = pytest.mark.timeout(30)


async def _ok(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()


async def _read_all(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> bytes:
    """Everything until the LB closes the connection."""
    async with asyncio.timeout(timeout_s):
        return await reader.read()


def _header_values(head: bytes, name: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")[1:]
    return [
        line.split(b":", 1)[1].strip()
        for line in lines
        if b":" in line and line.split(b":", 1)[0].strip().lower() == name
    ]


# -- head timeout ------------------------------------------------------------------------------


async def test_a_head_dribbled_a_byte_at_a_time_gets_408_and_is_closed(
    start_lb: StartLB,
) -> None:
    async with raw_worker(_ok) as worker:
        balancer = await start_lb([worker], client_header_timeout_s=0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
        try:
            writer.write(b"GET /echo HTTP/1.1\r\n")

            async def dribble() -> None:
                # Each byte would reset an idle timer; the head's own clock keeps running.
                for byte in b"X-Slow: " + b"a" * 10_000:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.05)

            dribbler = asyncio.create_task(dribble())
            try:
                response = await _read_all(reader)
            finally:
                dribbler.cancel()
                await asyncio.gather(dribbler, return_exceptions=True)
        finally:
            writer.close()
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert b'"code":"request_timeout"' in response
    assert b"Connection: close" in response
    assert worker.heads == []


async def test_a_connection_that_never_sends_a_head_gets_408(start_lb: StartLB) -> None:
    async with raw_worker(_ok) as worker:
        balancer = await start_lb([worker], client_header_timeout_s=0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
        try:
            response = await _read_all(reader)
        finally:
            writer.close()
    assert response.startswith(b"HTTP/1.1 408"), response[:200]


async def test_a_kept_alive_connection_is_not_timed_out_between_requests(
    start_lb: StartLB,
) -> None:
    async def ok_keep_alive(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with raw_worker(ok_keep_alive) as worker:
        balancer = await start_lb([worker], client_header_timeout_s=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
        try:
            writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(5):
                first = await reader.readuntil(b"ok")
            # Idle with no head begun for several head timeouts (and sweeps): a waiting
            # keep-alive connection is the idle timeout's business, not the head timeout's.
            loop = asyncio.get_running_loop()
            idle_until = loop.time() + 4 * 0.3
            await eventually(lambda: loop.time() > idle_until, timeout_s=5)
            writer.write(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(5):
                second = await reader.readuntil(b"ok")
        finally:
            writer.close()
    assert first.startswith(b"HTTP/1.1 200")
    assert second.startswith(b"HTTP/1.1 200")
    assert len(worker.heads) == 2


# -- connection cap ----------------------------------------------------------------------------


async def test_connections_over_the_cap_are_closed_and_the_admin_port_still_answers(
    start_lb: StartLB,
) -> None:
    async with raw_worker(_ok) as worker:
        balancer = await start_lb([worker], max_connections=2)
        assert balancer.server is not None
        server = balancer.server
        held = [await asyncio.open_connection("127.0.0.1", balancer.proxy_port) for _ in range(2)]
        await eventually(lambda: len(server.connections) == 2)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
            writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = await _read_all(reader)
            writer.close()
            async with aiohttp.ClientSession() as session:
                admin = f"http://127.0.0.1:{balancer.admin_port}/health"
                async with session.get(admin) as response:
                    admin_status = response.status
            # A held connection that leaves makes room for a new one.
            held.pop()[1].close()
            await eventually(lambda: len(server.connections) == 1)
            reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
            writer.write(b"GET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            served = await _read_all(reader)
            writer.close()
        finally:
            for _, held_writer in held:
                held_writer.close()
    assert refused == b""  # closed at once, nothing parsed, nothing forwarded
    assert server.cap.refused == 1
    assert admin_status == 200
    assert served.startswith(b"HTTP/1.1 200"), served[:200]
    assert [h.split(b" ")[1] for h in worker.heads] == [b"/y"]


# -- forwarding headers ------------------------------------------------------------------------

_FORGED = (
    b"GET /echo HTTP/1.1\r\nHost: real.example\r\nConnection: close, Host\r\n"
    b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
    b"X-Forwarded-Host: evil.example\r\nForwarded: for=6.6.6.6;proto=https\r\n"
    b"X-Real-IP: 6.6.6.6\r\n\r\n"
)


async def _forward_once(start_lb: StartLB, request: bytes, **settings: object) -> bytes:
    async with raw_worker(_ok) as worker:
        balancer = await start_lb([worker], **settings)
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
        try:
            writer.write(request)
            response = await _read_all(reader)
        finally:
            writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    (head,) = worker.heads
    return head


async def test_a_clients_forwarding_headers_are_replaced_not_believed(start_lb: StartLB) -> None:
    head = await _forward_once(start_lb, _FORGED)
    assert _header_values(head, b"x-forwarded-for") == [b"127.0.0.1"]
    assert _header_values(head, b"x-forwarded-proto") == [b"http"]
    assert _header_values(head, b"x-forwarded-host") == [b"real.example"]
    assert _header_values(head, b"x-real-ip") == [b"127.0.0.1"]
    assert _header_values(head, b"forwarded") == []
    assert b"6.6.6.6" not in head
    assert b"evil.example" not in head
    # Connection: Host named Host, which must never make the request lose it.
    assert _header_values(head, b"host") == [b"real.example"]


async def test_a_trusted_proxys_forwarding_headers_are_kept_and_extended(
    start_lb: StartLB,
) -> None:
    head = await _forward_once(start_lb, _FORGED, trusted_proxies="127.0.0.0/8, 10.0.0.0/8")
    assert _header_values(head, b"x-forwarded-for") == [b"6.6.6.6, 127.0.0.1"]
    assert _header_values(head, b"x-forwarded-proto") == [b"https"]
    assert _header_values(head, b"x-forwarded-host") == [b"evil.example"]
    assert _header_values(head, b"x-real-ip") == [b"6.6.6.6"]
    assert _header_values(head, b"forwarded") == [b"for=6.6.6.6;proto=https"]
    assert _header_values(head, b"host") == [b"real.example"]
