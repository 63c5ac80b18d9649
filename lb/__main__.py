"""``python -m lb``: the graphfleet load balancer; ``python -m lb ctl ...``: its admin CLI."""

from __future__ import annotations

import asyncio
import signal
import sys

import prometheus_client
import structlog

from common.logs import configure_logging
from common.settings import load_settings
from lb.app import ConfigError, LoadBalancer
from lb.gc_policy import tune_for_long_lived_connections
from lb.settings import LBSettings

log = structlog.get_logger("lb")


async def serve(settings: LBSettings) -> None:
    balancer = LoadBalancer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await balancer.start()
    except ConfigError as exc:
        log.error("lb_refused_to_start", reason=str(exc))
        raise SystemExit(2) from None
    tune_for_long_lived_connections()
    try:
        await stop.wait()
    finally:
        await balancer.stop()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["ctl"]:
        from lb import ctl

        sys.exit(ctl.main(args[1:]))
    settings = load_settings(LBSettings, argv, prog="python -m lb", env_prefix="LB_")
    configure_logging(settings.log_level, settings.log_format)
    # Counters without the *_created companions: nobody graphs them and they double the series.
    prometheus_client.disable_created_metrics()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    sys.exit(0)


if __name__ == "__main__":
    main()
