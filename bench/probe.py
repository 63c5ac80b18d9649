"""Small process and network probes for bench/run.sh.

python bench/probe.py ports 6     # six free loopback TCP ports, one a line
python bench/probe.py wait URL... # until each answers 200; exit 1 at the deadline
python bench/probe.py wait URL --json-at-least routable_instances=2 --pid PID
python bench/probe.py cpu PID...  # CPU seconds (user + system) of the process trees
python bench/probe.py busy        # the machine's CPU use over a second, in percent
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all sockets stay open until every port is chosen."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_cpu_s(root_pid: int) -> float:
    """User + system CPU seconds of a process and all its live descendants.

    nginx's work happens in its worker, a child of the master, so the tree is what counts.
    """
    children = _children_by_parent()
    total_ticks = 0
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # After the name: state is field 3 of stat(5), so utime (14) and stime (15) sit at 11, 12.
        total_ticks += int(fields[11]) + int(fields[12])
        pending.extend(children.get(pid, []))
    return total_ticks / CLOCK_TICKS_PER_S


def _answers(opener: urllib.request.OpenerDirector, url: str, at_least: dict[str, int]) -> bool:
    try:
        with opener.open(url, timeout=1.0) as response:
            if response.status != 200:
                return False
            if not at_least:
                return True
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return all(isinstance(body.get(k), int) and body[k] >= n for k, n in at_least.items())


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def busy_percent(seconds: float) -> float:
    """Share of all CPUs' time spent outside idle and iowait over the next ``seconds``."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]) - idle, sum(fields[:8])

    busy_before, total_before = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    elapsed = total_after - total_before
    return 100.0 * (busy_after - busy_before) / elapsed if elapsed else 0.0


def wait_ready(
    urls: list[str], timeout_s: float, at_least: dict[str, int], pid: int | None = None
) -> bool:
    """Poll each URL until it answers 200 (with JSON fields at least as large as asked).

    Gives up early when the process ``pid`` that should answer has exited.
    """
    deadline = time.monotonic() + timeout_s
    # Loopback only: never go through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for url in urls:
        while not _answers(opener, url, at_least):
            if not _alive(pid):
                print(f"probe: process {pid} exited before {url} answered", file=sys.stderr)
                return False
            if time.monotonic() > deadline:
                print(f"probe: {url} was not ready within {timeout_s:g} s", file=sys.stderr)
                return False
            time.sleep(0.1)
    return True


def _key_at_least(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=N, got {text!r}")
    return key, int(value)


def main() -> int:
    parser = argparse.ArgumentParser(description="Process and network probes for the benchmark.")
    commands = parser.add_subparsers(dest="command", required=True)
    ports = commands.add_parser("ports", help="print free loopback ports")
    ports.add_argument("count", type=int)
    wait = commands.add_parser("wait", help="wait until every URL answers 200")
    wait.add_argument("urls", nargs="+")
    wait.add_argument("--timeout-s", type=float, default=30.0)
    wait.add_argument("--pid", type=int, help="fail at once if this process exits")
    wait.add_argument(
        "--json-at-least",
        type=_key_at_least,
        action="append",
        default=[],
        metavar="KEY=N",
        help="also require the JSON body's KEY to be at least N",
    )
    busy = commands.add_parser("busy", help="print the machine's CPU use in percent")
    busy.add_argument("--seconds", type=float, default=1.0)
    cpu = commands.add_parser("cpu", help="print CPU seconds of process trees")
    cpu.add_argument("pids", nargs="+", type=int)
    args = parser.parse_args()

    if args.command == "ports":
        print("\n".join(str(port) for port in free_ports(args.count)))
        return 0
    if args.command == "wait":
        return 0 if wait_ready(args.urls, args.timeout_s, dict(args.json_at_least), args.pid) else 1
    if args.command == "busy":
        print(f"{busy_percent(args.seconds):.0f}")
        return 0
    print(f"{sum(tree_cpu_s(pid) for pid in args.pids):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
