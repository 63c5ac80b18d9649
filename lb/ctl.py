"""``graphfleet ctl`` (also ``python -m lb ctl``): the admin API from a terminal.

Reads ``LB_ADMIN_URL`` (default ``http://127.0.0.1:8081``) and ``LB_ADMIN_TOKEN`` (the token
is never a flag: flags show in ``ps``). Prints aligned tables, or the API's JSON with
``--json``. Every failure is one line on stderr and an exit code a script can test:

- 0 done; 1 the LB refused (4xx/5xx other than below); 2 bad usage;
- 3 the LB is unreachable; 4 missing or wrong token (401/403); 5 unknown instance (404).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8081"
EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_NOT_FOUND = 1, 2, 3, 4, 5


class CtlError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class AdminClient:
    """A tiny synchronous client of the admin API (stdlib only: the CLI starts fast)."""

    def __init__(self, base_url: str, token: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CtlError(
                f"cannot reach the LB admin API at {self.base_url}: {reason}", EXIT_UNREACHABLE
            ) from None


def _refusal(exc: urllib.error.HTTPError) -> CtlError:
    try:
        error = json.loads(exc.read())["error"]
        message = f"{error['message']} ({error['code']}, HTTP {exc.code})"
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {exc.code} {exc.reason}"
    if exc.code in (401, 403):
        return CtlError(f"{message}; set LB_ADMIN_TOKEN to the LB's admin token", EXIT_AUTH)
    if exc.code == 404:
        return CtlError(message, EXIT_NOT_FOUND)
    return CtlError(message, EXIT_REFUSED)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) and rows for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _instances_table(doc: dict[str, Any]) -> str:
    rows = [
        [
            i["id"],
            i["state"] + (" (removing)" if i.get("pending_removal") else ""),
            i["inflight"],
            f"{i['reported_load']}/{i['max_capacity']}",
            i["requests_per_s"],
            None if i["error_ratio"] is None else f"{i['error_ratio'] * 100:.1f}%",
            i["p50_ms"],
            i["p99_ms"],
            None if i["runs"] is None else f"{i['runs']['running']}/{i['runs']['queued']}",
            i["url"],
        ]
        for i in doc["instances"]
    ]
    headers = ["ID", "STATE", "INFLIGHT", "LOAD/CAP", "REQ/S", "ERRORS", "P50_MS", "P99_MS"]
    return table([*headers, "RUNS", "URL"], rows) + f"\n\nstrategy: {doc['strategy']}"


def _autoscaler_text(data: dict[str, Any]) -> str:
    if data.get("backend") == "off":
        return "autoscaler: off"
    config, last = data.get("config", {}), data.get("last_decision") or {}
    rows = [
        ["backend", data["backend"]],
        ["paused", "yes" if config.get("paused") else "no"],
        ["min", config.get("min_instances")],
        ["max", config.get("max_instances")],
        ["mode", config.get("mode")],
        ["current", last.get("current")],
        ["desired", last.get("desired")],
        ["last decision", last.get("action")],
        ["reason", last.get("reason")],
        ["last error", data.get("last_error")],
    ]
    return table(["AUTOSCALER", ""], rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphfleet ctl",
        description="Operate a graphfleet LB through its admin API. The LB's admin URL comes "
        f"from LB_ADMIN_URL (default {DEFAULT_URL}), its token from LB_ADMIN_TOKEN.",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="per call (default 10)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("instances", help="list the instances with their state and traffic")
    for name, text in (
        ("drain", "stop sending new work to an instance"),
        ("enable", "send work to a drained instance again"),
        ("remove", "drain an instance, then remove it"),
    ):
        commands.add_parser(name, help=text).add_argument("id", help="instance id")
    strategy = commands.add_parser("strategy", help="show or switch the balancing strategy")
    strategy.add_argument("name", nargs="?", help="the strategy to switch to")
    autoscaler = commands.add_parser("autoscaler", help="show or change the autoscaler")
    autoscaler.add_argument("--min", type=int, dest="low", metavar="N", help="fewest workers")
    autoscaler.add_argument("--max", type=int, dest="high", metavar="N", help="most workers")
    paused = autoscaler.add_mutually_exclusive_group()
    paused.add_argument("--pause", action="store_const", const=True, dest="paused")
    paused.add_argument("--resume", action="store_const", const=False, dest="paused")
    return parser


def run(args: argparse.Namespace, client: AdminClient, out: TextIO) -> None:
    """Carry out one parsed command; raises :class:`CtlError` on failure."""
    command = args.command
    if command == "instances":
        doc = client.call("GET", "/admin/status")
        print(
            json.dumps(doc["instances"], indent=2) if args.json else _instances_table(doc), file=out
        )
        return
    if command in ("drain", "enable", "remove"):
        path = f"/admin/instances/{quote(args.id, safe='')}"
        if command == "remove":
            result = client.call("DELETE", path)
        else:
            result = client.call("POST", f"{path}/{command}")
        state = "removing" if command == "remove" else result["state"]
        print(json.dumps(result, indent=2) if args.json else f"{result['id']}: {state}", file=out)
        return
    if command == "strategy":
        if args.name is None:
            result = client.call("GET", "/admin/strategy")
        else:
            result = client.call("PUT", "/admin/strategy", {"strategy": args.name})
        print(json.dumps(result, indent=2) if args.json else result["strategy"], file=out)
        return
    changes = {
        key: value
        for key, value in (("min", args.low), ("max", args.high), ("paused", args.paused))
        if value is not None
    }
    if changes:
        result = client.call("PUT", "/admin/autoscaler", changes)
    else:
        result = client.call("GET", "/admin/autoscaler")
    print(json.dumps(result, indent=2) if args.json else _autoscaler_text(result), file=out)


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    args = _parser().parse_args(argv)
    client = AdminClient(
        os.environ.get("LB_ADMIN_URL") or DEFAULT_URL,
        os.environ.get("LB_ADMIN_TOKEN", ""),
        args.timeout_s,
    )
    try:
        run(args, client, out or sys.stdout)
    except CtlError as exc:
        print(f"graphfleet ctl: error: {exc}", file=err or sys.stderr)
        return exc.code
    return 0
