"""The container's health check: ``python -m common.healthcheck`` (the Dockerfile's HEALTHCHECK).

The image runs either process, so the check asks the one that runs: the worker's ``GET /ok``
(alive, even while draining) or the LB's admin ``GET /health``, on loopback at the port the
environment names. Which one runs is read from PID 1's command line (``python -m lb`` or
``python -m worker``); when that cannot be told (an init process as PID 1), either answering
counts. Standard library only: the slim image has no curl. Exit status 0 healthy, 1 not.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 3.0
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _url(host_var: str, default_host: str, port_var: str, default_port: str, path: str) -> str:
    host = os.environ.get(host_var, default_host)
    if host in _WILDCARDS:
        host = "127.0.0.1"  # listening everywhere: loopback is one of the addresses
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{os.environ.get(port_var, default_port)}{path}"


def targets(cmdline: list[str]) -> list[str]:
    """The URLs to ask, from PID 1's arguments."""
    worker = _url("WORKER_HOST", "127.0.0.1", "WORKER_PORT", "8000", "/ok")
    lb = _url("LB_ADMIN_HOST", "127.0.0.1", "LB_ADMIN_PORT", "8081", "/health")
    if "worker" in cmdline:
        return [worker]
    if "lb" in cmdline:
        return [lb]
    return [worker, lb]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> int:
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
        cmdline = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except OSError:
        cmdline = []
    return 0 if any(healthy(url) for url in targets(cmdline)) else 1


if __name__ == "__main__":
    sys.exit(main())
