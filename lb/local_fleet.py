"""``python -m lb.local_fleet``: the load balancer plus N worker processes on this machine.

What ``make run`` starts: the LB in this process, and workers as child processes on the
ports after ``--first-worker-port`` that register themselves with the LB's admin API and
share one SQLite store. Ctrl-C or SIGTERM stops the workers (each drains and deregisters)
and then the LB; no process is left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import structlog

from lb.app import LoadBalancer
from lb.logs import configure_logging
from lb.settings import LBSettings

log = structlog.get_logger("lb.local_fleet")


async def _start_worker(port: int, admin_url: str, data_dir: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "WORKER_HOST": "127.0.0.1",
        "WORKER_PORT": str(port),
        "WORKER_ADVERTISE_URL": f"http://127.0.0.1:{port}",
        "WORKER_LB_ADMIN_URL": admin_url,
        "WORKER_LB_ADMIN_TOKEN": os.environ.get("LB_ADMIN_TOKEN", ""),
        "WORKER_STORE": os.environ.get(
            "WORKER_STORE", f"sqlite:///{(data_dir / 'worker.sqlite').resolve()}"
        ),
    }
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", env=env)


async def run(settings: LBSettings, workers: int, first_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    balancer = LoadBalancer(settings)
    await balancer.start()
    admin_url = f"http://{settings.admin_host}:{balancer.admin_port}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    processes = [
        await _start_worker(first_port + i, admin_url, settings.data_dir) for i in range(workers)
    ]
    log.info(
        "local_fleet_started",
        proxy=f"http://{settings.host}:{balancer.proxy_port}",
        admin=admin_url,
        workers=[f"http://127.0.0.1:{first_port + i}" for i in range(workers)],
    )
    exited = [asyncio.ensure_future(p.wait()) for p in processes]
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, *exited], return_when=asyncio.FIRST_COMPLETED)
        if stopping not in done:
            log.error("worker_exited", returncodes=[p.returncode for p in processes])
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=35)
            except TimeoutError:
                process.kill()
                await process.wait()
        stopping.cancel()
        await balancer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lb.local_fleet", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--first-worker-port", type=int, default=8000, help="port of the first worker (8000)"
    )
    args = parser.parse_args(argv)
    settings = LBSettings()
    configure_logging(settings.log_level, settings.log_format)
    import uvloop

    uvloop.run(run(settings, args.workers, args.first_worker_port))


if __name__ == "__main__":
    main()
