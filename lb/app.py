"""Assembles the load balancer: the shared core, the proxy app and the admin app, and runs them.

One lifecycle (STYLE 5): the upstream client session and the health checker live in the proxy
app's ``cleanup_ctx``; the admin app only reads the core. Shutdown goes in order: stop
accepting on the proxy port, let in-flight requests and streams finish up to
``shutdown_timeout_s``, cancel the rest, close the session, then stop the admin port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web

from lb.affinity import AffinityTable
from lb.control import Membership
from lb.ejection import OutlierDetector
from lb.health import CheckResult, HealthChecker
from lb.metrics import LBMetrics
from lb.proxy import Proxy
from lb.registry import Clock, Instance, Registry, instance_id_for_url
from lb.settings import LBSettings
from lb.shared import SharedRegistry
from lb.statefile import StateFileWriter, load_records
from lb.strategies import make_strategy

log = structlog.get_logger("lb")

# The aiohttp server's own header limits sit above ours so that our check answers 431 in JSON.
_PARSER_LIMIT_FACTOR = 2


@dataclass
class Fleet:
    """What the proxy and admin apps share. Built once per LB process."""

    settings: LBSettings
    registry: Registry
    proxy: Proxy
    health: HealthChecker
    outliers: OutlierDetector
    metrics: LBMetrics
    affinity: AffinityTable
    session: aiohttp.ClientSession
    rng: random.Random
    clock: Clock
    membership: Membership
    state_file: StateFileWriter
    shared: SharedRegistry | None = None
    stopping: bool = False


FLEET = web.AppKey("fleet", Fleet)


class ConfigError(Exception):
    """Settings that cannot run safely; the process exits with this message."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_fleet(
    settings: LBSettings, *, clock: Clock = time.monotonic, rng: random.Random | None = None
) -> Fleet:
    """Build the core. Must run inside the event loop (it creates the client session)."""
    rng = rng or random.Random()
    registry = Registry(clock)
    metrics = LBMetrics()
    outliers = OutlierDetector(registry, settings)
    affinity = AffinityTable(settings.affinity_table_size, settings.affinity_ttl_s, clock)
    connector = aiohttp.TCPConnector(
        limit=0,  # the LB's own capacity limits apply; the pool must never be the bottleneck
        keepalive_timeout=15.0,  # below aiohttp's server default, so workers never close first
        ttl_dns_cache=60,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        max_line_size=settings.max_header_bytes * _PARSER_LIMIT_FACTOR,
        max_field_size=settings.max_header_bytes * _PARSER_LIMIT_FACTOR,
    )
    proxy = Proxy(
        registry,
        make_strategy(settings.strategy, rng),
        session,
        settings,
        outliers,
        metrics,
        affinity,
    )

    def on_check(instance: Instance, result: CheckResult) -> None:
        metrics.health_checks.labels(instance.id, "pass" if result.ok else "fail").inc()
        metrics.health_check_duration.observe(result.duration_s)

    health = HealthChecker(registry, session, settings, rng, clock, on_result=on_check)
    metrics.watch(
        lambda: registry.snapshot,
        lambda: len(proxy.queue),
        lambda: outliers.ejections_total,
    )
    membership = Membership(registry, settings)
    state_file = StateFileWriter(settings.data_dir / "registry.json", membership.records)
    membership.on_change(state_file.mark_dirty)

    def forget(instance_id: str) -> None:
        metrics.forget_instance(instance_id)
        affinity.forget_instance(instance_id)

    membership.on_removal(forget)
    now = clock()
    for url in settings.instance_urls():
        registry.add(
            Instance(
                id=instance_id_for_url(url),
                url=url.rstrip("/"),
                max_capacity=settings.default_max_capacity,
                static=True,
                registered_at=now,
                last_seen_at=now,
            )
        )
    static_urls = {i.url for i in registry.snapshot.instances}
    membership.apply_records(
        [r for r in load_records(state_file.path) if r["url"] not in static_urls]
    )
    return Fleet(
        shared=SharedRegistry(settings.redis_url, membership, settings.redis_key_prefix)
        if settings.redis_url
        else None,
        membership=membership,
        state_file=state_file,
        settings=settings,
        registry=registry,
        proxy=proxy,
        health=health,
        outliers=outliers,
        metrics=metrics,
        affinity=affinity,
        session=session,
        rng=rng,
        clock=clock,
    )


async def _background(app: web.Application) -> AsyncIterator[None]:
    fleet = app[FLEET]
    fleet.health.start()
    tasks = [
        asyncio.create_task(fleet.membership.run_sweeper(), name="membership-sweeper"),
        asyncio.create_task(fleet.state_file.run(), name="state-file"),
    ]
    if fleet.shared is not None:
        tasks.append(asyncio.create_task(fleet.shared.run(), name="shared-registry"))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    fleet.outliers.stop()
    await fleet.health.stop()
    await fleet.session.close()


def proxy_app(fleet: Fleet) -> web.Application:
    app = web.Application(handler_args=_handler_args(fleet.settings))
    app[FLEET] = fleet
    app.router.add_route("*", "/{tail:.*}", fleet.proxy.handle)
    app.cleanup_ctx.append(_background)
    return app


def _handler_args(settings: LBSettings) -> dict[str, object]:
    limit = settings.max_header_bytes * _PARSER_LIMIT_FACTOR
    return {
        "max_line_size": limit,
        "max_field_size": limit,
        # Bodies pass through untouched: a gzip upload reaches the worker still gzipped.
        "auto_decompress": False,
    }


class LoadBalancer:
    """Runs the proxy and admin apps on their ports; used by ``main()`` and by tests."""

    def __init__(
        self,
        settings: LBSettings,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = rng
        self.fleet: Fleet | None = None
        self._proxy_runner: web.AppRunner | None = None
        self._admin_runner: web.AppRunner | None = None

    async def start(self) -> None:
        from lb.admin import admin_app

        settings = self.settings
        if not settings.admin_token and not is_loopback(settings.admin_host):
            raise ConfigError(
                f"LB_ADMIN_HOST={settings.admin_host} is not a loopback address: "
                "set LB_ADMIN_TOKEN so the admin API is not open to the network"
            )
        fleet = create_fleet(settings, clock=self._clock, rng=self._rng)
        self.fleet = fleet
        self._admin_runner = web.AppRunner(admin_app(fleet), access_log=None)
        await self._admin_runner.setup()
        await web.TCPSite(self._admin_runner, settings.admin_host, settings.admin_port).start()
        self._proxy_runner = web.AppRunner(
            proxy_app(fleet),
            access_log=None,
            handler_cancellation=True,  # a client that leaves cancels its upstream request
            shutdown_timeout=settings.shutdown_timeout_s,
        )
        await self._proxy_runner.setup()
        await web.TCPSite(
            self._proxy_runner, settings.host, settings.port, reuse_address=True
        ).start()
        log.info(
            "lb_started",
            proxy=f"http://{settings.host}:{self.proxy_port}",
            admin=f"http://{settings.admin_host}:{self.admin_port}",
            strategy=settings.strategy,
            instances=len(fleet.registry.snapshot.instances),
        )

    @property
    def proxy_port(self) -> int:
        assert self._proxy_runner is not None
        return int(self._proxy_runner.addresses[0][1])

    @property
    def admin_port(self) -> int:
        assert self._admin_runner is not None
        return int(self._admin_runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting, drain in-flight work up to the shutdown timeout, then close."""
        if self.fleet is not None:
            self.fleet.stopping = True
        if self._proxy_runner is not None:
            inflight = 0
            if self.fleet is not None:
                inflight = sum(i.load.inflight for i in self.fleet.registry.snapshot.instances)
            log.info("lb_stopping", inflight=inflight, timeout_s=self.settings.shutdown_timeout_s)
            await self._proxy_runner.cleanup()
            self._proxy_runner = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        log.info("lb_stopped")
