"""``python -m worker``: serve the graphs of a langgraph.json until SIGTERM or SIGINT.

Shutdown order (each step bounded): stop taking runs and answer /health with 503, let the
running runs finish up to ``WORKER_SHUTDOWN_TIMEOUT_S``, deregister from the LB, cancel what
is left, close connections and the store.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

import structlog
from aiohttp import web
from pydantic import ValidationError

from common.logs import configure_logging
from worker.app import create_app, drain
from worker.graphs import GraphLoadError
from worker.settings import WorkerSettings, load_settings

log = structlog.get_logger("worker")


async def serve(settings: WorkerSettings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("worker_listening", host=settings.host, port=settings.port, url=settings.url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stop_signal_received")
        await drain(app)
    finally:
        await runner.cleanup()
        log.info("worker_stopped")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        print(f"invalid worker settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:  # Windows
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(settings))
    except GraphLoadError as exc:
        log.error("graph_load_failed", reason=str(exc), graphs=str(settings.graphs))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
