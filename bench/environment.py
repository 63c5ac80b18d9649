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


def environment_lines(lb_revision: str) -> list[str]:
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
    return [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_logical_cpus()} logical CPUs, {_cpu_model()}, Linux {platform.release()}",
        f"- Versions: {versions}",
        f"- graphfleet measured: commit {lb_revision}",
    ]
