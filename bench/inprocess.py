"""The per-worker baseline: the benchmark graph's `ainvoke` rate in one process, no server.

    python bench/inprocess.py --checkpointer sqlite --sqlite-path /tmp/x.sqlite \\
        --durability exit --concurrency 16 --duration-s 10 --round 1 --results R.jsonl
    python bench/inprocess.py --checkpointer postgres --postgres-dsn postgresql://... ...

``concurrency`` tasks each invoke the graph again as soon as the last invocation returned, each
invocation on a thread of its own (as a stateless run is), with LangGraph's own savers: none,
`AsyncSqliteSaver` on a WAL file, `AsyncPostgresSaver` on one connection. ``--durability
default`` leaves LangGraph's default in place.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent / "graphs"))

from chain import build
from loadgen import latency_summary


@contextlib.asynccontextmanager
async def checkpointer(args: argparse.Namespace) -> AsyncIterator[Any]:
    if args.checkpointer == "none":
        yield None
    elif args.checkpointer == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(args.sqlite_path) as saver:
            await saver.conn.execute("PRAGMA journal_mode=WAL")
            await saver.setup()
            yield saver
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(args.postgres_dsn) as saver:
            await saver.setup()
            yield saver


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    latencies_ms: list[float] = []
    durability = None if args.durability == "default" else args.durability
    async with checkpointer(args) as saver:
        graph = build().compile(checkpointer=saver)
        now = time.perf_counter()
        measure_from, measure_until = now + args.warmup_s, now + args.warmup_s + args.duration_s

        async def client() -> None:
            while (started := time.perf_counter()) < measure_until:
                config = {"configurable": {"thread_id": str(uuid.uuid4())}}
                kwargs: dict[str, Any] = {} if durability is None else {"durability": durability}
                await graph.ainvoke({"value": 1}, config, **kwargs)
                if started >= measure_from:
                    latencies_ms.append((time.perf_counter() - started) * 1000.0)

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
    return {
        "kind": "inprocess",
        "target": f"{args.checkpointer}/{args.durability}",
        "concurrency": args.concurrency,
        "round": args.round,
        "duration_s": args.duration_s,
        "completed": len(latencies_ms),
        "runs_per_s": len(latencies_ms) / args.duration_s,
        **latency_summary(latencies_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="In-process ainvoke rate of the bench graph.")
    parser.add_argument("--checkpointer", choices=("none", "sqlite", "postgres"), required=True)
    parser.add_argument("--durability", choices=("default", "sync", "async", "exit"))
    parser.add_argument("--sqlite-path", default="inprocess.sqlite")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    if args.durability is None:
        args.durability = "default"
    record = uvloop.run(measure(args))
    with Path(args.results).open("a") as results:
        results.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "distribution_ms"}))


if __name__ == "__main__":
    main()
