"""Where a benchmark ran: machine, versions of everything measured, the commit, the date."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path


def _command_output(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def _first_match(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return match.group(1) if match else "not installed"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    return _first_match(r"model name\s*:\s*(.+)", cpuinfo)


def _logical_cpus() -> int:
    """What `nproc` prints: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def _oracle_versions() -> str:
    """langgraph-api and langgraph-cli as installed for `langgraph dev`, if they are."""
    oracle = Path(__file__).resolve().parent.parent / ".bench" / "oracle-venv" / "bin" / "python"
    if not oracle.exists():
        return ""
    code = (
        "import importlib.metadata as m; "
        "print(m.version('langgraph-api'), m.version('langgraph-cli'), m.version('langgraph'))"
    )
    words = _command_output(str(oracle), "-c", code).split()
    if len(words) != 3:
        return ""
    api, cli, langgraph = words
    return f", `langgraph dev`: langgraph-api {api}, langgraph-cli {cli}, langgraph {langgraph}"


def _postgres_settings(dsn: str) -> str:
    """The server settings that weigh on the Postgres fleet's figures, when it is reachable:
    a server tuned for tests (autovacuum off, say) is not what a fleet would run on."""
    names = ("autovacuum", "synchronous_commit", "fsync", "shared_buffers")
    query = "; ".join(f"SHOW {name}" for name in names)
    values = _command_output("psql", dsn, "-qAtc", query).splitlines()
    if len(values) != len(names):
        return ""
    return "- PostgreSQL server: " + ", ".join(
        f"{name} {value}" for name, value in zip(names, values, strict=True)
    )


def _cpu_counters(line: str) -> list[int]:
    """The ``cpu`` line of /proc/stat: user, nice, system, idle, iowait, irq, softirq, steal."""
    return [int(v) for v in line.split()[1:9]]


def stolen_percent(start: Path) -> float | None:
    """Share of the CPUs' time since ``start`` (a saved first line of /proc/stat) that the
    hypervisor gave to other guests (steal); None where there is no such counter."""
    try:
        before = _cpu_counters(start.read_text())
        after = _cpu_counters(Path("/proc/stat").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    if len(before) < 8 or len(after) < 8:
        return None
    elapsed = sum(after) - sum(before)
    return 100.0 * (after[7] - before[7]) / elapsed if elapsed > 0 else None


def environment_lines(lb_revision: str, pg_dsn: str = "") -> list[str]:
    """The report's lines on where it ran; ``pg_dsn``: the benchmark's Postgres server, whose
    settings are named when it answers."""
    nginx = _first_match(r"nginx/(\S+)", _command_output("nginx", "-v"))
    haproxy = _first_match(r"version (\S+)", _command_output("haproxy", "-v"))
    wrk = _first_match(r"wrk (?:debian/)?(\S+)", _command_output("wrk", "--version"))
    postgres = _first_match(r"(\d+\.\d+)", _command_output("psql", "--version"))
    redis = _first_match(r"redis-cli (\S+)", _command_output("redis-cli", "--version"))
    versions = (
        f"Python {platform.python_version()}, aiohttp {_package_version('aiohttp')}, "
        f"uvloop {_package_version('uvloop')}, nginx {nginx}, HAProxy {haproxy}, wrk {wrk}, "
        f"graphfleet's langgraph {_package_version('langgraph')}, "
        f"PostgreSQL {postgres}, Redis {redis}"
        f"{_oracle_versions()}"
    )
    lines = [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_logical_cpus()} logical CPUs, {_cpu_model()}, Linux {platform.release()}",
        f"- Versions: {versions}",
        f"- graphfleet measured: commit {lb_revision}",
    ]
    settings = _postgres_settings(pg_dsn) if pg_dsn else ""
    return [*lines, settings] if settings else lines
