"""A benchmark upstream: a small JSON body after an optional delay, and a health endpoint.

nginx serves the zero-latency scenario (it is faster than anything under test); nginx cannot
sleep, so the latency scenario runs this aiohttp + uvloop app instead, one process per port.

    python bench/upstream.py --port 9001 --delay-ms 50
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import web

BODY = b'{"ok":true,"service":"bench-upstream","items":[1,2,3,4,5,6,7,8]}'
HEALTH = b'{"status":"ok","current_load":0,"max_capacity":1000}'


def build_app(delay_s: float) -> web.Application:
    async def body(_request: web.Request) -> web.Response:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return web.Response(body=BODY, content_type="application/json")

    async def health(_request: web.Request) -> web.Response:
        return web.Response(body=HEALTH, content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", body)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before each answer")
    args = parser.parse_args()
    web.run_app(
        build_app(args.delay_ms / 1000.0),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        shutdown_timeout=1.0,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
