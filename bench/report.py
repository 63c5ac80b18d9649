"""Parse wrk runs, aggregate the repeats and write docs/benchmarks.md.

    python bench/report.py record --results R.jsonl --scenario small --target nginx \\
        --round 1 --wrk-output run.txt --cpu-s-before 1.20 --cpu-s-after 3.40
    python bench/report.py skip --results R.jsonl --scenario small --target lb --reason "..."
    python bench/report.py render --results R.jsonl --out docs/benchmarks.md --duration-s 10 ...
    python bench/report.py profile --raw py-spy.raw   # hottest frames of a py-spy raw profile
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from environment import environment_lines, stolen_percent
from report_graphs import sections

# Targets in the order the tables list them; labels as a reader knows them.
TARGET_LABELS = {
    "direct": "direct (no proxy)",
    "nginx": "nginx, 1 worker",
    "haproxy": "HAProxy, 1 thread",
    "lb": "graphfleet lb",
}
SCENARIO_TITLES = {
    "small": "Small JSON body",
    "latency": "Upstreams answering after a delay",
}
TIMES = "\N{MULTIPLICATION SIGN}"
# Issue 2's goal for the LB with every feature on.
GOAL_RATIO_VS_NGINX = 0.5
GOAL_CPU_US_PER_REQUEST = 60.0

HEADER = f"""\
# Benchmarks

What `make bench` (script: `bench/run.sh`) measures, all on loopback on one machine: graph runs
through graphfleet next to `langgraph dev` and the graph's own in-process rate (`runs`), many
SSE streams through the LB next to nginx (`sse`), the routing strategies under a mixed workload
next to nginx `least_conn` (`routing`), and the proxy's own cost on tiny requests next to nginx
and HAProxy (`small`, `latency`). Each scenario runs alone with `BENCH_SCENARIOS=<name>`; targets
take turns within a run, so drift hits all of them alike, and the tables give the median of the
repeats. Figures from a shared 2-core virtual machine move by several percent between runs:
compare rows of one table, not tables of different days.

The proxy scenarios: two upstreams — nginx serving a small JSON body, or for the latency
scenario two aiohttp processes (`bench/upstream.py`) that answer after a fixed delay — with
each proxy in front of both: nginx with one worker process (upstream keepalive, HTTP/1.1, no
access log), HAProxy with one thread (http mode, keep-alive and connection reuse to the servers)
and graphfleet's LB as shipped (every feature on, log level `warning`). A "direct" row is wrk
against one upstream with no proxy (in the latency scenario that is one aiohttp process taking
all connections, so it may trail the proxies, which spread them over two). wrk runs the targets
in turn after one short warm-up each. CPU µs/request is the proxy's own user + system time (for
nginx master and worker together) read from `/proc/<pid>/stat` around each run, divided by the
requests wrk completed.

## The proxy before and after the restructuring and hardening (issues 9 and 10)

`BENCH_SCENARIOS=small`, run twice back to back on 2026-12-01 on a quiet machine (0 % and 8 %
background CPU), the LB of commit 5b3d803 (before both) with `BENCH_LB_REV=5b3d803`, then the LB
of c2285cf (after both); medians of 3:

| LB measured | LB req/s | nginx req/s | LB vs nginx | LB CPU µs/request |
| --- | ---: | ---: | ---: | ---: |
| 5b3d803, before | 32,123 | 78,486 | 0.41{TIMES} | 30.8 |
| c2285cf, after | 29,950 | 77,504 | 0.39{TIMES} | 33.1 |

The proxy costs 2.3 µs (7 %) more CPU per request. Counted with callgrind (user-space
instructions, the same on a busy machine; the difference of 500 and 2,500 sequential keep-alive
requests; `bash bench/instructions.sh 5b3d803 c2285cf`), a request costs 193,500 instructions
before and 223,700 after (+16 %). cProfile over 5,000 requests shows where: 214 Python calls per
request before, 243 after; most of the added calls are the hardening's checks: the request's
header count, single `Host`, `Transfer-Encoding` and head checks on every request (issue 10),
the worker's response head bounded in bytes and fields, and the `Content-Length` the LB now
writes itself; the rest is the routing layer's split into strategy, affinity and capacity steps
(issue 9). The system time of the two socket writes per request is unchanged and still dominates
(59 % of the LB's samples under py-spy).

This file is written by `bench/report.py`; edit the header there.
"""

DURATION_RE = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")
DURATION_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class Run:
    scenario: str
    target: str
    round: int
    connections: int
    delay_ms: float
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_s: float | None


def _duration_ms(text: str) -> float:
    match = DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * DURATION_UNIT_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """The figures of one `wrk --latency` run: requests, seconds, req/s, p50, p99, errors."""
    figures: dict[str, float] = {"errors": 0.0}
    for line in output.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in {"50%", "99%"} and len(words) == 2:
            figures[f"p{words[0][:-1]}_ms"] = _duration_ms(words[1])
        elif len(words) >= 4 and words[1] == "requests" and words[2] == "in":
            figures["requests"] = float(words[0])
            figures["duration_s"] = _duration_ms(words[3].rstrip(",")) / 1000.0
        elif words[0] == "Requests/sec:":
            figures["requests_per_s"] = float(words[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            figures["errors"] += float(words[-1])
        elif words[0] == "Socket" and words[1] == "errors:":
            figures["errors"] += sum(float(n) for n in re.findall(r"\d+", line))
    missing = {"requests", "duration_s", "requests_per_s", "p50_ms", "p99_ms"} - figures.keys()
    if missing:
        raise ValueError(f"wrk output lacks {sorted(missing)}:\n{output}")
    return figures


def cpu_us_per_request(run: Run) -> float | None:
    if run.cpu_s is None or run.requests == 0:
        return None
    return run.cpu_s * 1e6 / run.requests


def _load(
    results: Path,
) -> tuple[list[Run], dict[tuple[str, str], str], list[dict[str, Any]]]:
    """wrk runs, skipped targets, and the other scenarios' records (see report_graphs)."""
    runs: list[Run] = []
    skipped: dict[tuple[str, str], str] = {}
    others: list[dict[str, Any]] = []
    if not results.exists():
        return runs, skipped, others
    for line in results.read_text().splitlines():
        record = json.loads(line)
        kind = record.pop("kind")
        if kind == "skip":
            skipped[(record["scenario"], record["target"])] = record["reason"]
        elif kind == "run":
            runs.append(Run(**record))
        else:
            others.append({"kind": kind, **record})
    return runs, skipped, others


def _append(results: Path, record: dict[str, object]) -> None:
    with results.open("a") as out:
        out.write(json.dumps(record) + "\n")


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _fmt_ms(value: float) -> str:
    return f"{value:.2f} ms"


def scenario_table(
    runs: list[Run], skipped: dict[tuple[str, str], str], scenario: str
) -> tuple[list[str], dict[str, float]]:
    """Markdown rows for one scenario, and the median req/s of each measured target."""
    rows = [
        "| target | req/s | vs nginx | p50 | p99 | CPU µs/request | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_target: dict[str, list[Run]] = {}
    for run in runs:
        if run.scenario == scenario:
            by_target.setdefault(run.target, []).append(run)
    medians = {t: _median([r.requests_per_s for r in rs]) for t, rs in by_target.items()}
    nginx_rps = medians.get("nginx")
    for target, label in TARGET_LABELS.items():
        if (scenario, target) in skipped:
            rows.append(f"| {label} | skipped: {skipped[(scenario, target)]} | | | | | |")
            continue
        target_runs = by_target.get(target)
        if not target_runs:
            continue
        rps = medians[target]
        ratio = f"{rps / nginx_rps:.2f}{TIMES}" if nginx_rps else "—"
        cpu_values = [v for v in map(cpu_us_per_request, target_runs) if v is not None]
        cpu = f"{_median(cpu_values):.1f}" if cpu_values else "—"
        rows.append(
            f"| {label} | {rps:,.0f} | {ratio} "
            f"| {_fmt_ms(_median([r.p50_ms for r in target_runs]))} "
            f"| {_fmt_ms(_median([r.p99_ms for r in target_runs]))} "
            f"| {cpu} | {sum(r.errors for r in target_runs)} |"
        )
    return rows, medians


def _goal_line(runs: list[Run], medians: dict[str, float], scenario: str) -> str | None:
    lb_runs = [r for r in runs if r.scenario == scenario and r.target == "lb"]
    if not lb_runs or "nginx" not in medians:
        return None
    ratio = medians["lb"] / medians["nginx"]
    cpu_values = [v for v in map(cpu_us_per_request, lb_runs) if v is not None]
    cpu = _median(cpu_values) if cpu_values else float("nan")
    met = ratio >= GOAL_RATIO_VS_NGINX and cpu <= GOAL_CPU_US_PER_REQUEST
    return (
        f"Goal for the LB (issue 2): at least {GOAL_RATIO_VS_NGINX}{TIMES} nginx's req/s and "
        f"at most {GOAL_CPU_US_PER_REQUEST:.0f} µs CPU/request. Measured: {ratio:.2f}{TIMES} and "
        f"{cpu:.1f} µs — {'met' if met else 'not met'}."
    )


def render(
    runs: list[Run],
    skipped: dict[tuple[str, str], str],
    others: list[dict[str, Any]],
    args: argparse.Namespace,
) -> tuple[str, dict[str, Any]]:
    """The Markdown report, and the figures `plots.py` draws."""
    lines = [HEADER, "## This run", "", *environment_lines(args.lb_revision, args.pg_dsn)]
    lines.append(
        f"- Settings: {args.duration_s:g} s per measurement, {args.repeats} repeat(s), targets "
        f"alternating; proxy scenarios `wrk -t{args.threads} --latency` after a "
        f"{args.warmup_s:g} s warm-up"
    )
    lines.append(
        f"- Machine's CPU use by other processes just before the run: "
        f"{args.background_busy_pct:.0f} %"
    )
    stolen = stolen_percent(Path(args.cpu_at_start)) if args.cpu_at_start else None
    if stolen is not None:
        lines.append(
            f"- CPU time taken by the hypervisor for other guests during the run (steal): "
            f"{stolen:.1f} % (on a shared virtual machine, figures vary with it)"
        )
    proxy_skipped = {s for s, _ in skipped if s in SCENARIO_TITLES}
    scenarios = sorted({r.scenario for r in runs} | proxy_skipped, key=_scenario_order)
    for scenario in scenarios:
        scenario_runs = [r for r in runs if r.scenario == scenario]
        if scenario_runs:
            first = scenario_runs[0]
            detail = f"{first.connections} connections"
            if first.delay_ms:
                detail = f"{first.delay_ms:g} ms upstream latency, {detail}"
        else:
            detail = "not measured"
        lines += ["", f"## {SCENARIO_TITLES.get(scenario, scenario)} ({detail})", ""]
        rows, medians = scenario_table(runs, skipped, scenario)
        lines += rows
        goal = _goal_line(runs, medians, scenario)
        if goal and scenario == "small":
            lines += ["", goal]
        per_run = [
            f"{TARGET_LABELS.get(t, t)}: "
            + ", ".join(
                f"{r.requests_per_s:,.0f}"
                for r in sorted(scenario_runs, key=lambda r: r.round)
                if r.target == t
            )
            for t in TARGET_LABELS
            if any(r.target == t for r in scenario_runs)
        ]
        if per_run:
            lines += ["", "req/s of each repeat — " + "; ".join(per_run) + "."]
    more, plots = sections(others, skipped)
    return "\n".join(lines + more) + "\n", plots


def profile_summary(raw: str, top: int) -> str:
    """The hottest frames of a py-spy raw (collapsed stacks) profile: own time and inclusive.

    Time spent in C (socket writes, the event loop, the HTTP parser) counts against the Python
    line that called it.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "own time (the frame itself, with the C it calls):"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive time (the frame and everything below it):"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _draw(plots: dict[str, Any], results: Path, out_dir: Path, python: str) -> None:
    """Hand the figures to plots.py, run by a Python that has matplotlib."""
    data = results.with_name("plots.json")
    data.write_text(json.dumps(plots))
    script = Path(__file__).with_name("plots.py")
    subprocess.run(
        [python, str(script), "--data", str(data), "--out-dir", str(out_dir)], check=True
    )


def _scenario_order(scenario: str) -> int:
    order = list(SCENARIO_TITLES)
    return order.index(scenario) if scenario in order else len(order)


def _record(args: argparse.Namespace) -> None:
    figures = parse_wrk(Path(args.wrk_output).read_text())
    cpu_s = None
    if args.cpu_s_before is not None and args.cpu_s_after is not None:
        cpu_s = args.cpu_s_after - args.cpu_s_before
    run = Run(
        scenario=args.scenario,
        target=args.target,
        round=args.round,
        connections=args.connections,
        delay_ms=args.delay_ms,
        requests=int(figures["requests"]),
        duration_s=figures["duration_s"],
        requests_per_s=figures["requests_per_s"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        errors=int(figures["errors"]),
        cpu_s=cpu_s,
    )
    _append(Path(args.results), {"kind": "run", **asdict(run)})
    cpu = cpu_us_per_request(run)
    print(
        f"  {run.scenario:<8} round {run.round}  {run.target:<8} {run.requests_per_s:>10,.0f} req/s"
        f"  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms"
        + (f"  {cpu:6.1f} µs/req" if cpu is not None else "")
        + (f"  {run.errors} errors" if run.errors else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark results: record runs, write report.")
    commands = parser.add_subparsers(dest="command", required=True)

    record = commands.add_parser("record", help="parse one wrk run and append it")
    record.add_argument("--results", required=True)
    record.add_argument("--scenario", required=True)
    record.add_argument("--target", required=True)
    record.add_argument("--round", type=int, required=True)
    record.add_argument("--connections", type=int, required=True)
    record.add_argument("--delay-ms", type=float, default=0.0)
    record.add_argument("--wrk-output", required=True)
    record.add_argument("--cpu-s-before", type=float)
    record.add_argument("--cpu-s-after", type=float)

    skip = commands.add_parser("skip", help="note a target that could not run")
    skip.add_argument("--results", required=True)
    skip.add_argument("--scenario", required=True)
    skip.add_argument("--target", required=True)
    skip.add_argument("--reason", required=True)

    out = commands.add_parser("render", help="write the Markdown report and print its tables")
    out.add_argument("--results", required=True)
    out.add_argument("--out", required=True)
    out.add_argument("--lb-revision", default="unknown", help="what lb/ code was measured")
    out.add_argument("--threads", type=int, required=True)
    out.add_argument("--duration-s", type=float, required=True)
    out.add_argument("--warmup-s", type=float, required=True)
    out.add_argument("--repeats", type=int, required=True)
    out.add_argument("--background-busy-pct", type=float, default=0.0)
    out.add_argument("--cpu-at-start", help="/proc/stat's first line when the run began")
    out.add_argument("--pg-dsn", default="", help="the benchmark's Postgres (settings named)")
    out.add_argument("--plot-python", help="a Python with matplotlib, to draw the PNGs")

    profile = commands.add_parser("profile", help="summarize a py-spy raw profile")
    profile.add_argument("--raw", required=True)
    profile.add_argument("--top", type=int, default=15)

    args = parser.parse_args()
    if args.command == "profile":
        print(profile_summary(Path(args.raw).read_text(), args.top), end="")
    elif args.command == "record":
        _record(args)
    elif args.command == "skip":
        _append(
            Path(args.results),
            {
                "kind": "skip",
                "scenario": args.scenario,
                "target": args.target,
                "reason": args.reason,
            },
        )
    else:
        runs, skipped, others = _load(Path(args.results))
        text, plots = render(runs, skipped, others, args)
        Path(args.out).write_text(text)
        if plots and args.plot_python:
            _draw(plots, Path(args.results), Path(args.out).parent, args.plot_python)
        print(text[len(HEADER) :].strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
