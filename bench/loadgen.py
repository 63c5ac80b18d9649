"""Closed-loop and mixed graph-run load, measured by the client itself.

    python bench/loadgen.py closed --url http://127.0.0.1:8080/runs/wait --concurrency 16 \\
        --duration-s 10 --warmup-s 2 --label lb-sqlite --round 1 --results R.jsonl
    python bench/loadgen.py mixed --base-url http://127.0.0.1:8080 --rate-per-s 30 \\
        --duration-s 20 --health http://127.0.0.1:9001/health ... --label least_loaded ...

`closed`: ``concurrency`` clients, each sending its next stateless `POST /runs/wait` as soon as
the last one answered; runs/s and latency percentiles over the measured window (after the
warm-up, on the same connections).

`mixed`: open-loop arrivals (Poisson, seeded) of three kinds of run — short (`/runs/wait`, no
sleep), long (`/runs/wait`, the graph sleeps) and background (`POST /runs`, answered at once,
the worker stays busy) — while every worker's `/health` is polled for its `current_load`.
Reports the short runs' latency percentiles and each worker's peak concurrent runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

GRAPH_ID = "bench"
# Percentiles stored per measurement, so that the report can draw latency distributions.
DISTRIBUTION_PCTS = (1, 5, 10, 25, 50, 75, 90, 95, 99)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when there are none)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies_ms)
    return {
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "mean_ms": statistics.fmean(ordered) if ordered else float("nan"),
        "distribution_ms": {str(p): percentile(ordered, p) for p in DISTRIBUTION_PCTS},
    }


def run_body(sleep_s: float = 0.0) -> dict[str, Any]:
    graph_input: dict[str, Any] = {"value": 1}
    if sleep_s > 0:
        graph_input["sleep_s"] = sleep_s
    return {"assistant_id": GRAPH_ID, "input": graph_input}


@dataclass
class ClosedLoop:
    """One closed-loop measurement: latencies of the runs that started inside the window."""

    url: str
    measure_from: float
    measure_until: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    async def client(self, session: aiohttp.ClientSession) -> None:
        body = run_body()
        while (started := time.perf_counter()) < self.measure_until:
            try:
                async with session.post(self.url, json=body) as response:
                    await response.read()
                    ok = response.status == 200
                    reason = f"HTTP {response.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                ok, reason = False, type(exc).__name__
            if started < self.measure_from:
                continue
            if ok:
                self.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            else:
                self.errors += 1
                if len(self.error_samples) < 3:
                    self.error_samples.append(reason)


async def closed(args: argparse.Namespace) -> dict[str, Any]:
    now = time.perf_counter()
    loop_state = ClosedLoop(
        url=args.url,
        measure_from=now + args.warmup_s,
        measure_until=now + args.warmup_s + args.duration_s,
    )
    timeout = aiohttp.ClientTimeout(total=args.request_timeout_s)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(loop_state.client(session) for _ in range(args.concurrency)))
    return {
        "kind": "runs",
        "target": args.label,
        "concurrency": args.concurrency,
        "round": args.round,
        "duration_s": args.duration_s,
        "completed": len(loop_state.latencies_ms),
        "runs_per_s": len(loop_state.latencies_ms) / args.duration_s,
        "errors": loop_state.errors,
        "error_samples": loop_state.error_samples,
        **latency_summary(loop_state.latencies_ms),
    }


@dataclass
class Mixed:
    """The mixed workload's outcome: short-run latencies, failures by kind, peaks by worker."""

    short_ms: list[float] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    peak_load: dict[str, int] = field(default_factory=dict)


async def _one_mixed(
    session: aiohttp.ClientSession, base_url: str, kind: str, args: argparse.Namespace, out: Mixed
) -> None:
    out.sent[kind] = out.sent.get(kind, 0) + 1
    if kind == "background":
        url, body = f"{base_url}/runs", run_body(args.background_sleep_s)
    else:
        url = f"{base_url}/runs/wait"
        body = run_body(args.long_sleep_s if kind == "long" else 0.0)
    started = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            await response.read()
            ok = response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        ok = False
    if not ok:
        out.errors[kind] = out.errors.get(kind, 0) + 1
    elif kind == "short":
        out.short_ms.append((time.perf_counter() - started) * 1000.0)


async def _poll_health(
    session: aiohttp.ClientSession, urls: list[str], interval_s: float, out: Mixed
) -> None:
    while True:
        for url in urls:
            try:
                async with session.get(url) as response:
                    load = int((await response.json()).get("current_load", 0))
            except (TimeoutError, aiohttp.ClientError, ValueError):
                continue
            out.peak_load[url] = max(out.peak_load.get(url, 0), load)
        await asyncio.sleep(interval_s)


async def _until_idle(session: aiohttp.ClientSession, urls: list[str], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        loads = []
        for url in urls:
            try:
                async with session.get(url) as response:
                    loads.append(int((await response.json()).get("current_load", 0)))
            except (TimeoutError, aiohttp.ClientError, ValueError):
                loads.append(-1)
        if all(load == 0 for load in loads):
            return
        await asyncio.sleep(0.1)


async def mixed(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    out = Mixed()
    kinds = ("short", "long", "background")
    weights = (
        1.0 - args.long_share - args.background_share,
        args.long_share,
        args.background_share,
    )
    timeout = aiohttp.ClientTimeout(total=args.request_timeout_s)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        poller = asyncio.create_task(_poll_health(session, args.health, args.poll_interval_s, out))
        tasks: set[asyncio.Task[None]] = set()
        deadline = time.perf_counter() + args.duration_s
        next_at = time.perf_counter()
        while next_at < deadline:
            delay_s = next_at - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            kind = rng.choices(kinds, weights)[0]
            task = asyncio.create_task(_one_mixed(session, args.base_url, kind, args, out))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += rng.expovariate(args.rate_per_s)
        if tasks:
            await asyncio.gather(*tasks)
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        # Background runs outlive their requests: the next measurement starts on idle workers.
        await _until_idle(session, args.health, args.request_timeout_s)
    return {
        "kind": "routing",
        "target": args.label,
        "load": args.load,
        "round": args.round,
        "rate_per_s": args.rate_per_s,
        "capacity_per_s": args.capacity_per_s,
        "long_share": args.long_share,
        "long_sleep_s": args.long_sleep_s,
        "background_share": args.background_share,
        "background_sleep_s": args.background_sleep_s,
        "sent": out.sent,
        "errors": out.errors,
        "short_completed": len(out.short_ms),
        "peak_load_by_worker": out.peak_load,
        "busiest_peak": max(out.peak_load.values(), default=0),
        **latency_summary(out.short_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Graph-run load for the benchmark.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("closed", "mixed"):
        sub = commands.add_parser(name)
        sub.add_argument("--label", required=True, help="target name in the results")
        sub.add_argument("--round", type=int, default=1)
        sub.add_argument("--duration-s", type=float, default=10.0)
        sub.add_argument("--request-timeout-s", type=float, default=120.0)
        sub.add_argument("--results", required=True, help="JSON lines file to append to")
    closed_cmd = commands.choices["closed"]
    closed_cmd.add_argument("--url", required=True)
    closed_cmd.add_argument("--concurrency", type=int, default=16)
    closed_cmd.add_argument("--warmup-s", type=float, default=1.0)
    mixed_cmd = commands.choices["mixed"]
    mixed_cmd.add_argument("--base-url", required=True)
    mixed_cmd.add_argument("--rate-per-s", type=float, required=True)
    mixed_cmd.add_argument("--load", type=float, required=True, help="share of capacity offered")
    mixed_cmd.add_argument("--capacity-per-s", type=float, default=0.0, help="for the report")
    mixed_cmd.add_argument("--health", nargs="+", required=True, help="workers' /health URLs")
    mixed_cmd.add_argument("--poll-interval-s", type=float, default=0.05)
    mixed_cmd.add_argument("--long-share", type=float, default=0.1)
    mixed_cmd.add_argument("--long-sleep-s", type=float, default=1.0)
    mixed_cmd.add_argument("--background-share", type=float, default=0.05)
    mixed_cmd.add_argument("--background-sleep-s", type=float, default=3.0)
    mixed_cmd.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    measure = closed if args.command == "closed" else mixed
    record = uvloop.run(measure(args))
    with Path(args.results).open("a") as results:
        results.write(json.dumps(record) + "\n")
    summary = {k: v for k, v in record.items() if k != "distribution_ms"}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
