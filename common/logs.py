"""structlog set-up shared by the load balancer and the workers.

Loggers are filtering bound loggers: a call below the configured level is a no-op method, so
nothing is formatted on the hot path when the level is off. Context (``request_id``,
``instance_id``, ``run_id``) is bound through contextvars by the callers.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import orjson
import structlog

LogFormat = Literal["json", "console"]


def _orjson_dumps(event: Any, default: Any = None) -> str:
    return orjson.dumps(event, default=default or str).decode()


def configure_logging(level: str = "info", fmt: LogFormat = "json") -> None:
    """Configure structlog once per process; safe to call again (tests, reloads)."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (aiohttp, psycopg) follow the same level.
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    logging.getLogger().setLevel(numeric)
