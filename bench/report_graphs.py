"""The report's sections for what users run: graph runs, SSE streams, routing of mixed runs.

`report.py render` calls `sections()` with the records `loadgen.py`, `inprocess.py` and
`sse_client.py` appended to the results file; it returns the Markdown and the figures the
plots need (`plots.py` draws them in the benchmark's own virtualenv, which has matplotlib).
Every figure is the median of the repeats; counts of failures are summed over them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"
RUNS_TARGETS = {
    "langgraph-dev": "`langgraph dev` (in-memory)",
    "lb-sqlite": "graphfleet LB + 2 workers, SQLite",
    "worker-sqlite": "graphfleet, 1 worker direct, SQLite",
    "lb-postgres": "graphfleet LB + 2 workers, Postgres + Redis",
    "lb-postgres-async": "the same, `WORKER_POSTGRES_SYNCHRONOUS_COMMIT=off`",
}
ROUTING_TARGETS = {
    "least_loaded": "LB `least_loaded`",
    "round_robin": "LB `round_robin`",
    "power_of_two": "LB `power_of_two`",
    "nginx_least_conn": "nginx `least_conn`",
}
SSE_TARGETS = {"direct": "direct (no proxy)", "nginx": "nginx, 1 worker", "lb": "graphfleet lb"}
# The goals the report checks, as the project set them.
GOAL_VS_DEV = 1.5
GOAL_C1_P50_MS = 50.0
GOAL_PER_WORKER = 0.7
GOAL_SSE_VS_NGINX = 1.5
GOAL_SSE_RSS_MIB = 500.0
GOAL_SSE_IDLE_TTFE_MS = 2.0
GOAL_ROUTING_VS_NGINX = 0.8
GOAL_ROUTING_LOAD = 0.75

RUNS_INTRO = """\
The same 5-node graph (`bench/graphs/chain.py`, no LLM, no sleeping) run statelessly with
`POST /runs/wait`, by a closed-loop client (`bench/loadgen.py`, aiohttp): each of *c* clients
sends its next run as soon as the last one answered; runs/s and latencies are the client's own,
over the measured window after a 1 s warm-up on the same connections. Targets: `langgraph dev`
(`langgraph-cli[inmem]`, `langgraph-api` 0.16.7, in the benchmark's own virtualenv), graphfleet's
LB in front of two workers sharing the default SQLite store, one worker alone on SQLite, and the
LB in front of two workers on Postgres with Redis (a database of the benchmark's own, dropped
afterwards). All targets run at once and take turns, concurrency by concurrency. The in-process
rows (`bench/inprocess.py`) are the graph's `ainvoke` rate at 16 concurrent invocations, each on
a new thread, with no server: the most a worker could do with the same checkpointer."""

# What profiling the runs showed (py-spy), kept with the report: the measured tables change
# with each run, this is why they look as they do.
RUNS_PROFILE = """\
### Where the time goes

Profiled 2026-12-01 with py-spy (one worker on SQLite, 8 stateless runs at a time, closed
loop, the machine shared: its load near 4 on 2 cores), and counted with the store's statement
trace (tests `test_statement_counts*.py` hold the counts):

- **Before** (commit d100320): 136 runs/s on one worker, its event loop idle in 65 % of the
  samples: waiting for the database, not short of CPU. A stateless run cost 49 SQLite
  statements and 11 write transactions: its temporary thread created, then checked for other
  workers' runs and for checkpoints although just made; its record written pending, then
  running, then ended; `busy` written twice; two delete transactions at the end; webhook
  events written although nobody was to receive them, and the webhook dispatcher woken twice
  per run, each time claiming (a write transaction) and counting the outbox. Every statement
  was one hop to aiosqlite's thread (a quarter of the loop's busy time); the records waited
  behind one lock, and every checkpoint call behind LangGraph's saver lock, so one write
  waiting for the file's lock (the other worker's transaction) stopped all of that worker's
  checkpointing, reads included.
- **After**: 240-280 runs/s on one worker, the loop idle ~40 %; a stateless run is 20
  statements and 3 write transactions (begun with its thread and its start, its checkpoint at
  exit, ended with its thread deleted); a run on a thread writes its records twice and shares
  checkpoint commits with the other runs (group commit). Checkpoint and record reads run on
  three reader connections, one hop per call, beside the writer. What is left of the loop's
  busy time: LangGraph executing the graph ~27 %, HTTP and request handling ~15 %, the hops to
  the SQLite threads ~15 %, reading the final state for the answer ~3 %. Worker CPU per run
  ~3 ms, from ~5.5 ms. Through the LB at 16 clients the LB uses 0.06 of a core and each worker
  ~0.6: the fleet is bound by CPU (LangGraph, HTTP), no longer by waiting.
- **Side by side**, each beside `langgraph dev` in one `BENCH_SCENARIOS=runs` run (before:
  `BENCH_LB_REV=d100320`), 16 clients, medians of 3, machine 32 % busy with other work when
  each started: LB + 2 workers on SQLite 170 runs/s (0.95 times `langgraph dev`'s 180) before,
  420 runs/s (2.31 times its 182) after; on Postgres + Redis 88 before, 151 after (242 in the
  first round: the shared machine moved it most).
- **Postgres**: a stateless run is 7 statements (was ~33 round trips) and 3 write
  transactions, each write of a run's life a single statement; the checkpointer no longer
  serialises a worker's calls. What bounds it now is CPU on the same two cores: psycopg
  preparing and adapting each query (~25 % of the worker's busy time), LangGraph's Postgres
  saver moving each blob (de)serialisation to a thread (~10 %), the Redis relay publishing
  every event of every run (~12 %), and the Postgres server itself.
- **Postgres, then** (prepared statements, one Redis EXPIRE per stream per batch, small
  checkpoints and writes encoded in place rather than on a thread): both fleets up at once and
  taking turns, 4 rounds at 16 clients, 239 runs/s before and 317 after (medians; ahead in every
  round, 1.28-1.51 times); Postgres + Redis over SQLite in the same run moved from 0.42 to about
  0.5 per round. Still short of the SQLite figure: psycopg sending queries (18 % of the
  worker's time), LangGraph's check for an existing checkpoint on a stateless run's new thread
  (8 %), reading the final state (5 %), the relay (5 %), the assistant looked up per run (3.5 %)."""

SSE_INTRO = """\
Streams of server-sent events from an upstream of the benchmark's own (`bench/sse_upstream.py`,
one event per stream every {interval:g} s, each carrying the time it was sent), through the LB
and through nginx (1 worker, `proxy_buffering off`), opened at {rate:,.0f} a second and held
{hold:g} s after the last one opened, by a raw asyncio client on uvloop (`bench/sse_client.py`).
Time to first event counts from starting the connect; event delay is receive time minus send
time; a gap in an event's sequence counts as lost, a step back as reordered. Memory is the
proxy's resident set (nginx: master and worker), CPU its user + system time as a share of one
core (mean over the measurement, and the peak half second). The low-load rows hold
{idle} streams opened at 20 a second. The direct row under load is the same client straight to
the upstream: the floor that the client, the upstream and the machine set for both proxies."""

SSE_FINDINGS = """\
Where the LB's time went (issue 12; py-spy with `BENCH_PROFILE=1`, the LB alone under this
load): before (2026-12-01, one run, the machine fully busy with others' work as it began), its
p99s were 389 ms to first event and 240 ms of event delay against nginx's 5.2 ms and 10.1 ms in
the same run, while its CPU was low (19 % mean). The cause was not work but stalls: CPython's
full garbage collections, which run whenever the long-lived objects grew by a quarter, walked
some 345,000 tracked objects at 5,000 streams (about 55 per stream: the bound callbacks each
llhttp parser holds, the exchange's coroutines, its task, two transports) and stopped the loop 4
times per run for up to 365 to 508 ms. The LB process now freezes what start-up made and lets a
full collection run only after 1,000 younger ones (`lb/gc_policy.py`), and its per-connection
objects are freed by reference counting when a connection ends (no reference cycles, held by
`tests/integration/lb/test_no_cycles.py`), so none is left for the rare full pass. With it, no
full collection ran while streams were open, and the young ones paused at most a few ms; on
2026-12-01 (commit 311fb5b, 3 repeats, the machine 64 % busy with others' work before the run)
the LB's p99s were 4.1 ms to first event and 4.8 ms of event delay against nginx's 4.7 ms and
5.3 ms. Three rounds of 5,000 streams through one LB process left its resident memory where the
first round put it (135 MiB): nothing piles up between the rare full collections. What is left
is the kernel's: about 40 % of the LB's samples are the one `transport.write` per event to the
client and a third uvloop's own loop (reads, accepts, epoll); opening a stream (parse, route,
connect to the upstream, relay the head) is under 20 %. The loop is uvloop's; each event is one
read from the worker and one write to the client, re-chunked by the LB (which frames what it
forwards: two small copies), with no drain per event: a client that reads slowly pauses the
reading of its worker connection instead. No listen-queue overflow was seen (`nstat`
ListenOverflows 0), so the accept backlog was left as it is. The same change took the `small`
scenario's LB p99 from 143 ms to 14 ms (two runs side by side with nginx, lb/ before and after)
at an unchanged req/s (0.31 and 0.30 times nginx's) and CPU per request (36.8 and 36.6 µs)."""

ROUTING_INTRO = """\
A mixed workload (`bench/loadgen.py mixed`): open-loop Poisson arrivals of runs of the bench
graph, {short:.0%} short (`/runs/wait`, no sleep), {long:.0%} long (`/runs/wait`, the graph
sleeps {long_s:g} s) and {bg:.0%} background (`POST /runs`, answered at once, the worker busy
for {bg_s:g} s), offered at a share of the fleet's capacity (short runs, closed loop at 16
through the LB: {capacity}), through graphfleet's LB with each strategy and through nginx
`least_conn`, in front of the same {workers} workers (SQLite store, room for 64 runs each so that
nothing is refused). The busiest worker's peak is the most concurrent runs any worker reported
in its `/health` `current_load`, polled every 50 ms."""


ROUTING_FINDINGS = """\
What `least_loaded` counts (issue 12): the LB's own in-flight requests plus the runs a worker
holds that none of them waits on. It used to add the worker's whole reported `current_load` from
the last health check (every 2 s) to the LB's in-flight count: each run the LB was waiting on
counted twice, and went on counting for up to a health interval after it had ended, so a worker
that had been busy at its last check was shunned while it sat idle. Now each check sets an
instance's background count to the report less the LB's own work requests in flight at that
moment, and a background run the LB starts itself (`POST /runs`, `/runs/batch`,
`/graphs/execute` answered 2xx) counts at once, until the next check corrects it. The
autoscaler's utilization had the same double count and now uses the same figure. Two runs of
this scenario on 2026-12-01, same machine, 3 repeats each, 75 % load: before (lb/ at d100320
through `BENCH_LB_REV`), `least_loaded` 403 ms against nginx `least_conn`'s 272 ms, 1.48 times
(repeats 403, 69 and 571 ms against 209, 272 and 521 ms); after (commit 311fb5b), 128 ms against
278 ms, 0.46 times, below nginx's in every repeat (82, 128 and 201 ms against 278, 220 and 684
ms). At 50 % load `least_loaded` still trails nginx in both runs (99 and 115 ms against 67 and
66 ms). Most runs in progress are then asleep (long and background runs), and the likely cause
is that picking the worker with the fewest runs in progress sends several short runs in a row to
the same worker, where nginx's rotation among equals, or `round_robin`, spreads them. An
experiment the same day counting only the LB's in-flight requests (no background runs; 2
repeats, not kept) gave 68 and 28 ms at 50 % against nginx's 60 and 74 ms, but 445 and 341 ms at
75 % against 207 and 919 ms: counting background runs looked worse at 50 % and better at 75 %,
but two repeats on a shared machine are too few to choose, and the design's signal, which counts
them, stays."""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:,.1f} ms"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or a != a or b != b:
        return None
    return a / b


def _group(
    records: list[dict[str, Any]], *keys: str
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[tuple(record[k] for k in keys)].append(record)
    return groups


def _distribution(records: list[dict[str, Any]]) -> dict[str, float]:
    pcts = records[0].get("distribution_ms", {}).keys()
    return {p: _median([r["distribution_ms"][p] for r in records]) for p in pcts}


def _runs_order(item: tuple[tuple[Any, ...], Any]) -> tuple[int, int]:
    (target, concurrency), _ = item
    order = list(RUNS_TARGETS)
    return (order.index(target) if target in order else len(order), concurrency)


def runs_section(
    records: list[dict[str, Any]], skipped: dict[str, str]
) -> tuple[list[str], dict[str, Any]]:
    served = _group([r for r in records if r["kind"] == "runs"], "target", "concurrency")
    medians = {key: _median([r["runs_per_s"] for r in rs]) for key, rs in served.items()}
    lines = ["", "## Graph runs (`BENCH_SCENARIOS=runs`)", "", RUNS_INTRO, ""]
    lines += [
        "| target | clients | runs/s | p50 | p99 | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, label in RUNS_TARGETS.items():
        if target in skipped:
            lines.append(f"| {label} | skipped: {skipped[target]} | | | | |")
        for (name, concurrency), rs in sorted(served.items(), key=lambda kv: kv[0][1]):
            if name == target:
                lines.append(
                    f"| {label} | {concurrency} | {medians[(name, concurrency)]:,.1f} "
                    f"| {_ms(_median([r['p50_ms'] for r in rs]))} "
                    f"| {_ms(_median([r['p99_ms'] for r in rs]))} "
                    f"| {sum(r['errors'] for r in rs)} |"
                )
    inproc = _group([r for r in records if r["kind"] == "inprocess"], "target")
    inproc_rps = {key[0]: _median([r["runs_per_s"] for r in rs]) for key, rs in inproc.items()}
    if inproc:
        lines += [
            "",
            "| in-process `ainvoke`, checkpointer / durability | runs/s at 16 | p50 | p99 |",
        ]
        lines.append("| --- | ---: | ---: | ---: |")
        for (target,), rs in inproc.items():
            lines.append(
                f"| {target} | {inproc_rps[target]:,.1f} "
                f"| {_ms(_median([r['p50_ms'] for r in rs]))} "
                f"| {_ms(_median([r['p99_ms'] for r in rs]))} |"
            )
    refused = sorted({t for (t, _), rs in served.items() if any(r["errors"] for r in rs)})
    if refused:
        samples = sorted({e for rs in served.values() for r in rs for e in r["error_samples"]})
        lines += [
            "",
            f"Rows with errors ({', '.join(RUNS_TARGETS.get(t, t) for t in refused)}): runs "
            f"the target refused ({', '.join(samples)}); their runs/s counts completed runs "
            "only. A worker alone answers 503 to runs beyond its `WORKER_MAX_CONCURRENCY` "
            "(8 by default), where the LB queues them.",
        ]
    lines += ["", *runs_goals(served, medians, inproc_rps), "", RUNS_PROFILE]
    plot = {
        "runs_per_s": [
            {"target": RUNS_TARGETS.get(t, t), "concurrency": c, "runs_per_s": v}
            for (t, c), v in sorted(medians.items())
        ],
        "latency": [
            {
                "target": RUNS_TARGETS.get(t, t),
                "concurrency": c,
                "distribution_ms": _distribution(rs),
            }
            for (t, c), rs in sorted(served.items())
        ],
    }
    return lines, plot


def runs_goals(
    served: dict[tuple[Any, ...], list[dict[str, Any]]],
    medians: dict[tuple[Any, ...], float],
    inproc_rps: dict[str, float],
) -> list[str]:
    top = max((c for _, c in medians), default=16)
    vs_dev = _ratio(medians.get(("lb-sqlite", top)), medians.get(("langgraph-dev", top)))
    c1 = served.get(("lb-sqlite", 1))
    c1_p50 = _median([r["p50_ms"] for r in c1]) if c1 else None
    pg_vs_sqlite = _ratio(medians.get(("lb-postgres", top)), medians.get(("lb-sqlite", top)))
    async_vs_sqlite = _ratio(
        medians.get(("lb-postgres-async", top)), medians.get(("lb-sqlite", top))
    )
    # Per worker: the LB's two workers halved. A worker alone refuses what exceeds its
    # WORKER_MAX_CONCURRENCY, while the LB queues it, so only the fleet figure is comparable.
    lb_sqlite, lb_pg = medians.get(("lb-sqlite", top)), medians.get(("lb-postgres", top))
    per_worker_sqlite = _ratio(
        lb_sqlite / 2 if lb_sqlite else None, inproc_rps.get("sqlite/default")
    )
    per_worker_pg = _ratio(lb_pg / 2 if lb_pg else None, inproc_rps.get("postgres/default"))

    def shown(value: float | None, unit: str = TIMES) -> str:
        return "—" if value is None else f"{value:.2f}{unit}"

    def met(value: float | None, ok: bool) -> str:
        return _verdict(None if value is None else ok)

    like_for_like = (
        []
        if async_vs_sqlite is None
        else [
            f"- For comparison, Postgres + Redis with `WORKER_POSTGRES_SYNCHRONOUS_COMMIT=off` "
            f"vs SQLite (neither then waits for each commit's flush), runs/s at {top}: "
            f"{shown(async_vs_sqlite)}."
        ]
    )
    return [
        "Targets:",
        "",
        f"- LB + 2 workers on SQLite vs `langgraph dev`, runs/s at {top}: "
        f"at least {GOAL_VS_DEV}{TIMES};"
        f" measured {shown(vs_dev)} — {met(vs_dev, (vs_dev or 0) >= GOAL_VS_DEV)}.",
        f"- LB + 2 workers on SQLite, p50 at 1 client: under {GOAL_C1_P50_MS:.0f} ms; measured "
        f"{shown(c1_p50, ' ms')} — {met(c1_p50, (c1_p50 or 1e9) < GOAL_C1_P50_MS)}.",
        f"- Postgres + Redis vs SQLite (LB + 2 workers, runs/s at {top}): at least 1{TIMES}; "
        f"measured {shown(pg_vs_sqlite)} — {met(pg_vs_sqlite, (pg_vs_sqlite or 0) >= 1.0)}.",
        f"- Per worker vs in-process `ainvoke` with the same checkpointer and default durability, "
        f"at {top} (LB + 2 workers, halved): at least {GOAL_PER_WORKER}{TIMES}; SQLite "
        f"{shown(per_worker_sqlite)} — "
        f"{met(per_worker_sqlite, (per_worker_sqlite or 0) >= GOAL_PER_WORKER)}; "
        f"Postgres {shown(per_worker_pg)} — "
        f"{met(per_worker_pg, (per_worker_pg or 0) >= GOAL_PER_WORKER)}.",
        *like_for_like,
    ]


def sse_section(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    sse = [r for r in records if r["kind"] == "sse"]
    first = next((r for r in sse if r["phase"] == "load"), sse[0])
    interval_s = 0.5
    lines = ["", "## SSE streams (`BENCH_SCENARIOS=sse`)", ""]
    lines.append(
        SSE_INTRO.format(
            interval=interval_s,
            rate=first["open_per_s"],
            hold=first.get("hold_s", 0.0) or 0.0,
            idle=next((r["streams"] for r in sse if r["phase"] == "idle"), 0),
        )
    )
    groups = _group(sse, "phase", "target")
    lines += [
        "",
        "| target | streams | with events | first event p50 / p99 | event delay p50 / p99 "
        "| lost / reordered | failed / ended early | peak RSS | CPU mean / peak "
        "| client CPU peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    figures: dict[tuple[str, str], dict[str, float]] = {}
    for (phase, target), rs in sorted(groups.items()):
        fig = {
            key: _median([r[key] for r in rs])
            for key in (
                "streams_with_events",
                "ttfe_p50_ms",
                "ttfe_p99_ms",
                "delay_p50_ms",
                "delay_p99_ms",
                "peak_rss_mib",
                "cpu_pct_mean",
                "cpu_pct_peak",
                "client_cpu_pct_peak",
            )
        }
        for key in ("lost", "reordered", "failed", "ended_early"):
            fig[key] = sum(r[key] for r in rs)
        fig["without_events"] = sum(r["streams"] - r["streams_with_events"] for r in rs)
        figures[(phase, target)] = fig
        proxied = phase == "load" and target != "direct"
        rss = f"{fig['peak_rss_mib']:,.0f} MiB" if proxied else "—"
        cpu = f"{fig['cpu_pct_mean']:.0f} % / {fig['cpu_pct_peak']:.0f} %" if proxied else "—"
        lines.append(
            f"| {SSE_TARGETS.get(target, target)}{' (low load)' if phase == 'idle' else ''} "
            f"| {rs[0]['streams']:,} | {fig['streams_with_events']:,.0f} "
            f"| {_ms(fig['ttfe_p50_ms'])} / {_ms(fig['ttfe_p99_ms'])} "
            f"| {_ms(fig['delay_p50_ms'])} / {_ms(fig['delay_p99_ms'])} "
            f"| {fig['lost']:.0f} / {fig['reordered']:.0f} "
            f"| {fig['failed']:.0f} / {fig['ended_early']:.0f} "
            f"| {rss} | {cpu} | {fig['client_cpu_pct_peak']:.0f} % |"
        )
    lines += ["", *sse_goals(figures), "", SSE_FINDINGS]
    plot = {
        "memory": [
            {"target": SSE_TARGETS.get(r["target"], r["target"]), "samples": r["samples"]}
            for r in sse
            # The first round: fresh processes, before any earlier round's high-water mark.
            if r["phase"] == "load" and r["round"] == min(x["round"] for x in sse)
        ]
    }
    return lines, plot


def sse_goals(figures: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    lb, nginx = figures.get(("load", "lb")), figures.get(("load", "nginx"))
    lines = ["Targets:", ""]
    if lb and nginx:
        ttfe = _ratio(lb["ttfe_p99_ms"], nginx["ttfe_p99_ms"])
        delay = _ratio(lb["delay_p99_ms"], nginx["delay_p99_ms"])
        intact = lb["lost"] == 0 and lb["reordered"] == 0 and lb["without_events"] == 0
        lines += [
            f"- Time to first event p99 at most {GOAL_SSE_VS_NGINX}{TIMES} nginx's: "
            f"{_ms(lb['ttfe_p99_ms'])} vs {_ms(nginx['ttfe_p99_ms'])}, "
            f"{(ttfe or 0):.2f}{TIMES} — {_verdict((ttfe or 1e9) <= GOAL_SSE_VS_NGINX)}.",
            f"- Event delay p99 at most {GOAL_SSE_VS_NGINX}{TIMES} nginx's: "
            f"{_ms(lb['delay_p99_ms'])} vs {_ms(nginx['delay_p99_ms'])}, "
            f"{(delay or 0):.2f}{TIMES} — {_verdict((delay or 1e9) <= GOAL_SSE_VS_NGINX)}.",
            f"- LB memory under {GOAL_SSE_RSS_MIB:.0f} MB: peak {lb['peak_rss_mib']:,.0f} MiB — "
            f"{_verdict(lb['peak_rss_mib'] * 1.048576 < GOAL_SSE_RSS_MIB)}.",
            f"- Nothing lost or reordered through the LB: {lb['lost']:.0f} lost, "
            f"{lb['reordered']:.0f} reordered, {lb['failed']:.0f} failed, "
            f"{lb['without_events']:.0f} opened but without an event by the end (nginx: "
            f"{nginx['without_events']:.0f}), "
            f"{lb['ended_early']:.0f} ended early — "
            f"{_verdict(intact and not lb['failed'] and not lb['ended_early'])}.",
        ]
    idle_lb, idle_direct = figures.get(("idle", "lb")), figures.get(("idle", "direct"))
    if idle_lb and idle_direct:
        gap = idle_lb["ttfe_p50_ms"] - idle_direct["ttfe_p50_ms"]
        lines.append(
            f"- Time to first event at low load within {GOAL_SSE_IDLE_TTFE_MS:g} ms of direct at "
            f"p50: {_ms(idle_lb['ttfe_p50_ms'])} vs {_ms(idle_direct['ttfe_p50_ms'])} "
            f"(+{gap:.2f} ms) — {_verdict(gap <= GOAL_SSE_IDLE_TTFE_MS)}."
        )
    busy = max((f["client_cpu_pct_peak"] for f in figures.values()), default=0.0)
    lines.append(
        f"- The client's own CPU peaked at {busy:.0f} % of a core"
        + (
            ": it may itself have limited the figures."
            if busy >= 85
            else ", below saturation: the client did not hold the streams back (waiting for a "
            "CPU behind other processes still counts in every figure)."
        )
    )
    return lines


def routing_section(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    routing = [r for r in records if r["kind"] == "routing"]
    meta = routing[0]
    lines = ["", "## Routing of mixed runs (`BENCH_SCENARIOS=routing`)", ""]
    lines.append(
        ROUTING_INTRO.format(
            short=1 - meta.get("long_share", 0.1) - meta.get("background_share", 0.05),
            long=meta.get("long_share", 0.1),
            long_s=meta.get("long_sleep_s", 1.0),
            bg=meta.get("background_share", 0.05),
            bg_s=meta.get("background_sleep_s", 3.0),
            capacity=f"{meta.get('capacity_per_s', 0.0):,.1f} runs/s",
            workers=len(meta["peak_load_by_worker"]) or "the",
        )
    )
    lines += [
        "",
        "| target | load | runs/s offered | short p50 | short p99 | busiest worker's peak "
        "| errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups = _group(routing, "load", "target")
    p99: dict[tuple[float, str], float] = {}
    for (load, target), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], list(ROUTING_TARGETS).index(kv[0][1]))
    ):
        p99[(load, target)] = _median([r["p99_ms"] for r in rs])
        errors = sum(sum(r["errors"].values()) for r in rs)
        lines.append(
            f"| {ROUTING_TARGETS.get(target, target)} | {load:.0%} "
            f"| {_median([r['rate_per_s'] for r in rs]):,.1f} "
            f"| {_ms(_median([r['p50_ms'] for r in rs]))} | {_ms(p99[(load, target)])} "
            f"| {_median([r['busiest_peak'] for r in rs]):.0f} | {errors} |"
        )
    ratio = _ratio(
        p99.get((GOAL_ROUTING_LOAD, "least_loaded")),
        p99.get((GOAL_ROUTING_LOAD, "nginx_least_conn")),
    )
    lines += [
        "",
        "Target:",
        "",
        f"- `least_loaded` short-run p99 at most {GOAL_ROUTING_VS_NGINX}{TIMES} nginx "
        f"`least_conn`'s at {GOAL_ROUTING_LOAD:.0%} load: "
        + (
            "not measured"
            if ratio is None
            else f"{ratio:.2f}{TIMES} — {_verdict(ratio <= GOAL_ROUTING_VS_NGINX)}."
        ),
    ]
    # A p99 of some hundreds of short runs hangs on a handful of them: each repeat's, to judge.
    repeats = [
        f"{ROUTING_TARGETS.get(t, t)}: "
        + ", ".join(
            _ms(r["p99_ms"])
            for r in sorted(groups.get((GOAL_ROUTING_LOAD, t), []), key=lambda r: r["round"])
        )
        for t in ROUTING_TARGETS
        if (GOAL_ROUTING_LOAD, t) in groups
    ]
    if repeats:
        lines += [
            "",
            f"Short-run p99 of each repeat at {GOAL_ROUTING_LOAD:.0%} load — "
            + "; ".join(repeats)
            + ".",
        ]
    lines += ["", ROUTING_FINDINGS]
    plot = {
        "p99": [
            {"target": ROUTING_TARGETS.get(t, t), "load": load, "p99_ms": v}
            for (load, t), v in sorted(p99.items())
        ]
    }
    return lines, plot


def sections(
    records: list[dict[str, Any]], skipped: dict[tuple[str, str], str]
) -> tuple[list[str], dict[str, Any]]:
    """Markdown for each scenario that has records, and the figures for the plots."""
    lines: list[str] = []
    plots: dict[str, Any] = {}
    runs_skipped = {t: why for (s, t), why in skipped.items() if s == "runs"}
    if any(r["kind"] in {"runs", "inprocess"} for r in records) or runs_skipped:
        more, plots["runs"] = runs_section(records, runs_skipped)
        lines += [*more, "", "![runs/s by clients](benchmarks-runs.png)"]
        lines += ["", "![latency distributions](benchmarks-runs-latency.png)"]
    if any(r["kind"] == "sse" for r in records):
        more, plots["sse"] = sse_section(records)
        lines += [*more, "", "![proxy memory by open streams](benchmarks-sse-memory.png)"]
    if any(r["kind"] == "routing" for r in records):
        more, plots["routing"] = routing_section(records)
        lines += [*more, "", "![short-run p99 by load](benchmarks-routing.png)"]
    return lines, plots
