"""Hold many SSE streams open and measure each event's trip: the streaming scenario's client.

    python bench/sse_client.py --url http://127.0.0.1:8080/stream --streams 5000 \\
        --open-per-s 1000 --hold-s 10 --watch-pid 1234 --label lb --results R.jsonl

Opens ``streams`` connections at ``open_per_s``, keeps them all open ``hold_s`` after the last
one opened, then closes them. Per stream: time to first event (from starting the connect);
per event: its delay (receive time minus the send time the upstream wrote into it) and its
sequence number, so that a lost event (a gap) or a reordered one (going back) is counted.
Meanwhile the process tree ``watch_pid`` (the proxy) is sampled twice a second for resident
memory and CPU, beside the number of streams open then, and this client's own CPU use, which
says whether the client was the bottleneck.

A raw asyncio protocol on uvloop that only scans for `data: ` lines: aiohttp would need several
times the CPU for 10,000 events a second on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import uvloop
from loadgen import percentile
from probe import tree_cpu_s

SAMPLE_INTERVAL_S = 0.5
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Totals:
    """What every stream of one measurement adds up to."""

    ttfe_ms: list[float] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)
    events: int = 0
    lost: int = 0
    reordered: int = 0
    failed: int = 0
    ended_early: int = 0
    open_now: int = 0
    closing: bool = False


class StreamProtocol(asyncio.Protocol):
    def __init__(self, request: bytes, started: float, totals: Totals) -> None:
        self.request = request
        self.started = started
        self.totals = totals
        self.transport: asyncio.Transport | None = None
        self.head_done = False
        self.buffer = b""
        self.next_seq = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        self.totals.open_now += 1
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data
        if not self.head_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                self.totals.failed += 1
                assert self.transport is not None
                self.transport.close()
                return
            self.head_done = True
            buffer = buffer[end + 4 :]
        lines = buffer.split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            if line.startswith(b"data: "):
                self._event(line, now)

    def _event(self, line: bytes, now: float) -> None:
        seq_text, _, sent_text = line[6:].partition(b" ")
        seq = int(seq_text)
        totals = self.totals
        if seq == 0:
            totals.ttfe_ms.append((time.perf_counter() - self.started) * 1000.0)
        if seq < self.next_seq:
            totals.reordered += 1
        else:
            totals.lost += seq - self.next_seq
            self.next_seq = seq + 1
        totals.events += 1
        totals.delays_ms.append((now - float(sent_text)) * 1000.0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.open_now -= 1
        if not self.totals.closing:
            self.totals.ended_early += 1


def _rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (nginx's master and worker)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for one in pids:
        try:
            total += int(Path(f"/proc/{one}/statm").read_text().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue
    return total


async def _sample(pid: int | None, totals: Totals, samples: list[dict[str, float]]) -> None:
    started = time.monotonic()
    cpu_before = tree_cpu_s(pid) if pid else 0.0
    own_before = time.process_time()
    while True:
        await asyncio.sleep(SAMPLE_INTERVAL_S)
        cpu_now = tree_cpu_s(pid) if pid else 0.0
        own_now = time.process_time()
        samples.append(
            {
                "at_s": time.monotonic() - started,
                "streams": totals.open_now,
                "rss_mib": _rss_bytes(pid) / 2**20 if pid else 0.0,
                "cpu_pct": 100.0 * (cpu_now - cpu_before) / SAMPLE_INTERVAL_S,
                "client_cpu_pct": 100.0 * (own_now - own_before) / SAMPLE_INTERVAL_S,
            }
        )
        cpu_before, own_before = cpu_now, own_now


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = (
        f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    totals = Totals()
    samples: list[dict[str, float]] = []
    sampler = asyncio.create_task(_sample(args.watch_pid, totals, samples))
    transports: list[asyncio.BaseTransport] = []
    cpu_before = tree_cpu_s(args.watch_pid) if args.watch_pid else 0.0
    wall_before = time.monotonic()

    async def open_one() -> None:
        started = time.perf_counter()
        try:
            transport, _ = await loop.create_connection(
                lambda: StreamProtocol(request, started, totals), host, port
            )
        except OSError:
            totals.failed += 1
            return
        transports.append(transport)

    opening: list[asyncio.Task[None]] = []
    first_at = time.monotonic()
    for index in range(args.streams):
        delay_s = first_at + index / args.open_per_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        opening.append(asyncio.create_task(open_one()))
    await asyncio.gather(*opening)
    await asyncio.sleep(args.hold_s)
    totals.closing = True
    for transport in transports:
        transport.close()
    sampler.cancel()
    cpu_s = (tree_cpu_s(args.watch_pid) if args.watch_pid else 0.0) - cpu_before
    wall_s = time.monotonic() - wall_before
    await asyncio.sleep(0.2)
    ttfe = sorted(totals.ttfe_ms)
    delays = sorted(totals.delays_ms)
    return {
        "kind": "sse",
        "target": args.label,
        "phase": args.phase,
        "round": args.round,
        "streams": args.streams,
        "open_per_s": args.open_per_s,
        "hold_s": args.hold_s,
        "streams_with_events": len(ttfe),
        "failed": totals.failed,
        "ended_early": totals.ended_early,
        "events": totals.events,
        "lost": totals.lost,
        "reordered": totals.reordered,
        "ttfe_p50_ms": percentile(ttfe, 50),
        "ttfe_p99_ms": percentile(ttfe, 99),
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "peak_rss_mib": max((s["rss_mib"] for s in samples), default=0.0),
        "cpu_pct_mean": 100.0 * cpu_s / wall_s if wall_s else 0.0,
        "cpu_pct_peak": max((s["cpu_pct"] for s in samples), default=0.0),
        "client_cpu_pct_peak": max((s["client_cpu_pct"] for s in samples), default=0.0),
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Many SSE streams, measured.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--open-per-s", type=float, default=1000.0)
    parser.add_argument("--hold-s", type=float, default=10.0)
    parser.add_argument("--watch-pid", type=int, help="the proxy, for memory and CPU")
    parser.add_argument("--label", required=True)
    parser.add_argument("--phase", default="load", help="load or idle (low load)")
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.streams + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    record = uvloop.run(run(args))
    with Path(args.results).open("a") as results:
        results.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "samples"}))


if __name__ == "__main__":
    main()
