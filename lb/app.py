"""Assembles the load balancer: the shared core, the proxy port and the admin app, and runs them.

One lifecycle (STYLE 5): the health checker's client session and every background loop (health
checks, drain sweeper, state file, shared registry, idle upstream connections) live in the
admin app's ``cleanup_ctx``. Shutdown goes in order: stop accepting on the proxy port, let
in-flight requests and streams finish up to ``shutdown_timeout_s``, cancel the rest, then stop
the background loops and the admin port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import shlex
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from lb.autoscaler.backends.base import ScalingBackend
from lb.autoscaler.loop import Autoscaler, policy_config
from lb.fleet.control import Membership
from lb.fleet.ejection import OutlierDetector
from lb.fleet.health import CheckResult, HealthChecker
from lb.fleet.redis_registry import SharedRegistry
from lb.fleet.registry import Clock, Instance, Registry, instance_id_for_url
from lb.fleet.statefile import StateFileWriter, load_records
from lb.http.server import ProxyServer
from lb.metrics import LBMetrics
from lb.proxy import Proxy, Upstreams
from lb.routing.affinity import AffinityTable
from lb.routing.router import Router
from lb.routing.strategies import make_strategy
from lb.settings import LBSettings

log = structlog.get_logger("lb")

UPSTREAM_IDLE_S = 15.0  # below aiohttp's server keep-alive, so workers never close first
CLIENT_KEEPALIVE_S = 75.0


@dataclass
class Fleet:
    """What the proxy port and the admin app share. Built once per LB process."""

    settings: LBSettings
    registry: Registry
    router: Router
    proxy: Proxy
    upstreams: Upstreams
    health: HealthChecker
    outliers: OutlierDetector
    metrics: LBMetrics
    affinity: AffinityTable
    membership: Membership
    state_file: StateFileWriter
    session: aiohttp.ClientSession
    rng: random.Random
    clock: Clock
    shared: SharedRegistry | None = None
    autoscaler: Autoscaler | None = None
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
    router = Router(
        registry,
        make_strategy(settings.strategy, rng),
        affinity,
        metrics,
        settings.queue_size,
        settings.queue_timeout_s,
    )
    upstreams = Upstreams(settings.connect_timeout_s)
    proxy = Proxy(router, upstreams, settings, outliers, metrics, affinity)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    def on_check(instance: Instance, result: CheckResult) -> None:
        metrics.health_checks.labels(instance.id, "pass" if result.ok else "fail").inc()
        metrics.health_check_duration.observe(result.duration_s)

    health = HealthChecker(registry, session, settings, rng, clock, on_result=on_check)
    metrics.watch(
        lambda: registry.snapshot,
        lambda: len(router.queue),
        lambda: outliers.ejections_total,
    )
    membership = Membership(registry, settings)
    state_file = StateFileWriter(settings.data_dir / "registry.json", membership.records)
    membership.on_change(state_file.mark_dirty)

    def forget(instance_id: str) -> None:
        metrics.forget_instance(instance_id)
        affinity.forget_instance(instance_id)
        upstreams.retain({i.url for i in registry.snapshot.instances})

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
    fleet = Fleet(
        settings=settings,
        registry=registry,
        router=router,
        proxy=proxy,
        upstreams=upstreams,
        health=health,
        outliers=outliers,
        metrics=metrics,
        affinity=affinity,
        membership=membership,
        state_file=state_file,
        session=session,
        rng=rng,
        clock=clock,
        shared=SharedRegistry(settings.redis_url, membership, settings.redis_key_prefix)
        if settings.redis_url
        else None,
    )
    backend = make_backend(fleet)
    if backend is not None:
        fleet.autoscaler = Autoscaler(
            backend,
            policy_config(settings),
            registry,
            membership,
            router,
            metrics,
            interval_s=settings.autoscale_interval_s,
            drain_timeout_s=settings.drain_timeout_s,
            clock=clock,
        )
    return fleet


def make_backend(fleet: Fleet) -> ScalingBackend | None:
    settings = fleet.settings
    if settings.autoscale == "local":
        from lb.autoscaler.backends.local import LocalBackend

        return LocalBackend(
            fleet.membership,
            settings.data_dir,
            check_now=fleet.health.check,
            start_timeout_s=settings.autoscale_start_timeout_s,
            argv=shlex.split(settings.autoscale_local_command) or None,
        )
    if settings.autoscale == "kubernetes":
        from lb.autoscaler.backends.kubernetes import KubernetesBackend, KubernetesConfig

        return KubernetesBackend(
            KubernetesConfig(
                namespace=settings.k8s_namespace,
                deployment=settings.k8s_deployment,
                kubeconfig=settings.k8s_kubeconfig,
                context=settings.k8s_context,
                service=settings.k8s_service,
                register_endpoints=settings.k8s_register_endpoints,
                worker_port=settings.k8s_worker_port,
                victim_deletion_cost=settings.k8s_victim_deletion_cost,
                request_timeout_s=settings.k8s_request_timeout_s,
            ),
            fleet.membership,
            fleet.registry,
        )
    if settings.autoscale == "docker":
        from lb.autoscaler.backends.docker import DockerBackend, DockerConfig

        return DockerBackend(
            DockerConfig(
                url=settings.docker_url,
                image=settings.docker_image,
                network=settings.docker_network,
                fleet=settings.docker_fleet,
                worker_port=settings.docker_worker_port,
                env=settings.docker_env,
                api_version=settings.docker_api_version,
                start_timeout_s=settings.autoscale_start_timeout_s,
                stop_timeout_s=settings.docker_stop_timeout_s,
                request_timeout_s=settings.docker_request_timeout_s,
            ),
            fleet.membership,
            fleet.registry,
        )
    return None


async def _close_idle_upstreams(upstreams: Upstreams) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(UPSTREAM_IDLE_S / 3)
        upstreams.close_idle(loop.time() - UPSTREAM_IDLE_S)


async def _background(app: web.Application) -> AsyncIterator[None]:
    fleet = app[FLEET]
    fleet.health.start()
    loops: list[Coroutine[Any, Any, None]] = [
        fleet.membership.run_sweeper(),
        fleet.state_file.run(),
        _close_idle_upstreams(fleet.upstreams),
    ]
    if fleet.shared is not None:
        loops.append(fleet.shared.run())
    if fleet.autoscaler is not None:
        loops.append(fleet.autoscaler.run())
    tasks = [asyncio.create_task(loop) for loop in loops]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    fleet.outliers.stop()
    await fleet.health.stop()
    fleet.upstreams.close()
    await fleet.session.close()


class LoadBalancer:
    """Runs the proxy port and the admin app; used by ``main()`` and by tests."""

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
        self._server: ProxyServer | None = None
        self._admin_runner: web.AppRunner | None = None
        self.proxy_port = 0

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
        app = admin_app(fleet)
        app.cleanup_ctx.append(_background)
        self._admin_runner = web.AppRunner(app, access_log=None)
        await self._admin_runner.setup()
        await web.TCPSite(self._admin_runner, settings.admin_host, settings.admin_port).start()
        self._server = ProxyServer(
            fleet.proxy.serve,
            max_header_bytes=settings.max_header_bytes,
            keepalive_timeout_s=CLIENT_KEEPALIVE_S,
            body_timeout_s=settings.client_body_timeout_s,
        )
        self.proxy_port = await self._server.start(settings.host, settings.port)
        log.info(
            "lb_started",
            proxy=f"http://{settings.host}:{self.proxy_port}",
            admin=f"http://{settings.admin_host}:{self.admin_port}",
            strategy=settings.strategy,
            instances=len(fleet.registry.snapshot.instances),
        )

    @property
    def admin_port(self) -> int:
        assert self._admin_runner is not None
        return int(self._admin_runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting, drain in-flight work up to the shutdown timeout, then close."""
        if self.fleet is not None:
            self.fleet.stopping = True
            self.fleet.proxy.closing = True
        if self._server is not None:
            log.info(
                "lb_stopping",
                active=self._server.active,
                timeout_s=self.settings.shutdown_timeout_s,
            )
            await self._server.shutdown(self.settings.shutdown_timeout_s)
            self._server = None
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        log.info("lb_stopped")
