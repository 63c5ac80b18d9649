"""``graphfleet``: one command for the load balancer, the workers, and a whole local fleet.

- ``graphfleet up``: in a directory with a ``langgraph.json`` (or ``--config PATH``), the LB
  with the local autoscaler serving those graphs, durable on SQLite under ``./.graphfleet/``
  (or ``--store URL``); prints where everything is; Ctrl-C or SIGTERM stops it all.
- ``graphfleet lb ...`` / ``graphfleet worker ...``: ``python -m lb`` / ``python -m worker``
  with the same flags.
- ``graphfleet ctl ...``: ``python -m lb ctl ...``, the admin API from a terminal.

This module only launches: it runs the ``lb`` or ``worker`` package as ``__main__`` (runpy)
in this process, so ``common`` imports neither and signals reach the process that handles
them. ``up`` is ``lb`` with the settings of a local fleet put in the environment; the LB's
local backend stops every worker it started when it stops, so nothing outlives Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = """usage: graphfleet COMMAND [ARGS]

commands:
  up       serve the graphs of ./langgraph.json with a local fleet (graphfleet up --help)
  lb       run the load balancer (python -m lb; graphfleet lb --help lists every setting)
  worker   run one worker (python -m worker; graphfleet worker --help)
  ctl      operate a running LB (graphfleet ctl --help)
"""


def _run_module(module: str, argv: Sequence[str], prog: str) -> int:
    sys.argv = [prog, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _workers(value: str) -> tuple[int, int]:
    low, sep, high = value.partition(":")
    try:
        bounds = (int(low), int(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError("expected MIN:MAX, e.g. 1:4") from None
    if bounds[0] < 0 or bounds[1] < max(1, bounds[0]):
        raise argparse.ArgumentTypeError("expected 0 <= MIN <= MAX and MAX >= 1")
    return bounds


def up_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphfleet up",
        description="Serve the graphs of a langgraph.json: the load balancer and a local, "
        "autoscaled fleet of workers on SQLite. Other LB_* and WORKER_* variables apply.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("langgraph.json"),
        help="the langgraph.json (default: ./langgraph.json)",
    )
    parser.add_argument("--store", help="store URL (default: sqlite under ./.graphfleet/)")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=(1, 4),
        metavar="MIN:MAX",
        help="fewest and most worker processes (default 1:4)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of both ports")
    parser.add_argument("--port", type=int, default=8080, help="the API's port (default 8080)")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=8081,
        help="admin API, status page and metrics (default 8081)",
    )
    return parser  # fmt: skip


def up_environment(args: argparse.Namespace, cwd: Path) -> dict[str, str]:
    """The settings of a local fleet for ``args`` run from ``cwd`` (``LB_*``/``WORKER_*``)."""
    config = (cwd / args.config).resolve()
    state = cwd.resolve() / ".graphfleet"
    low, high = args.workers
    return {
        "LB_HOST": args.host,
        "LB_PORT": str(args.port),
        "LB_ADMIN_HOST": args.host,
        "LB_ADMIN_PORT": str(args.admin_port),
        "LB_AUTOSCALE": "local",
        "LB_AUTOSCALE_MIN": str(low),
        "LB_AUTOSCALE_MAX": str(high),
        "LB_DATA_DIR": str(state / "lb"),
        "WORKER_GRAPHS": str(config),
        "WORKER_STORE": args.store or f"sqlite:///{state / 'worker.sqlite'}",
    }


def up(argv: Sequence[str]) -> int:
    args = up_parser().parse_args(argv)
    cwd = Path.cwd()
    config = cwd / args.config
    if not config.is_file():
        print(f"graphfleet up: error: no {config} (run it in your project directory, or pass "
              "--config PATH)", file=sys.stderr)  # fmt: skip
        return 2
    environment = up_environment(args, cwd)
    (cwd / ".graphfleet").mkdir(exist_ok=True)
    os.environ.update(environment)
    for name in ("LB_LOG_FORMAT", "WORKER_LOG_FORMAT"):
        os.environ.setdefault(name, "console")
    api = f"http://{args.host}:{args.port}"
    admin = f"http://{args.host}:{args.admin_port}"
    print(
        f"graphfleet: serving {config.resolve()} with {args.workers[0]} to {args.workers[1]} "
        f'workers\n  API          {api}   (langgraph-sdk: get_client(url="{api}"))\n'
        f"  status page  {admin}/\n  admin API    {admin}/admin\n  metrics      {admin}/metrics\n"
        f"  store        {environment['WORKER_STORE']}\nCtrl-C stops everything.",
        flush=True,
    )
    return _run_module("lb", [], "graphfleet lb")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "up":
        return up(rest)
    if command in ("lb", "worker"):
        return _run_module(command, rest, f"graphfleet {command}")
    if command == "ctl":
        return _run_module("lb", ["ctl", *rest], "graphfleet ctl")
    print(f"graphfleet: error: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
