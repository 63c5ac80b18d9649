"""Assembles the load balancer: its components, the proxy port and the admin app; runs them.

One lifecycle (STYLE 5): the health checker's client session and every background loop (health
checks, drain sweeper, state file, Redis registry, idle upstream connections) live in the
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
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from lb.admin import admin_app
from lb.autoscaler.backends.base import ScalingBackend
from lb.autoscaler.loop import Autoscaler, policy_config
from lb.components import COMPONENTS, Components
from lb.fleet.control import Membership
from lb.fleet.ejection import OutlierDetector
from lb.fleet.health import CheckResult, HealthChecker
from lb.fleet.redis_registry import RedisRegistry
from lb.fleet.registry import Clock, Instance, Registry, instance_id_for_url
from lb.fleet.statefile import StateFileWriter, load_records
from lb.http.server import ProxyServer
from lb.http.shutdown import ShutdownState
from lb.metrics import LBMetrics
from lb.proxy.service import Proxy
from lb.proxy.upstreams import Upstreams
from lb.routing.affinity import AffinityTable
from lb.routing.router import Router
from lb.routing.strategies import make_strategy
from lb.settings import LBSettings

log = structlog.get_logger("lb")

UPSTREAM_IDLE_S = 15.0  # below aiohttp's server keep-alive, so workers never close first
CLIENT_KEEPALIVE_S = 75.0


class ConfigError(Exception):
    """Settings that cannot run safely; the process exits with this message."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_components(
    settings: LBSettings, *, clock: Clock = time.monotonic, rng: random.Random | None = None
) -> Components:
    """Build the LB's parts and wire them together. Must run inside the event loop (it creates
    the client session)."""
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
    shutdown = ShutdownState()
    proxy = Proxy(router, upstreams, settings, outliers, metrics, affinity, shutdown)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    membership = Membership(registry, settings)
    state_file = StateFileWriter(settings.data_dir / "registry.json", membership.records)
    parts = Components(
        settings=settings,
        registry=registry,
        router=router,
        proxy=proxy,
        upstreams=upstreams,
        health=_health_checker(registry, session, settings, rng, clock, metrics),
        outliers=outliers,
        metrics=metrics,
        affinity=affinity,
        membership=membership,
        state_file=state_file,
        session=session,
        rng=rng,
        clock=clock,
        shutdown=shutdown,
    )
    _wire(parts)
    _load_instances(parts)
    if settings.redis_url:
        parts.redis_registry = RedisRegistry(
            settings.redis_url, membership, settings.redis_key_prefix
        )
    backend = make_backend(parts)
    if backend is not None:
        parts.autoscaler = _autoscaler(parts, backend)
    return parts


def _autoscaler(parts: Components, backend: ScalingBackend) -> Autoscaler:
    settings = parts.settings
    return Autoscaler(
        backend,
        policy_config(settings),
        parts.registry,
        parts.membership,
        parts.router,
        parts.metrics,
        interval_s=settings.autoscale_interval_s,
        drain_timeout_s=settings.drain_timeout_s,
        clock=parts.clock,
    )


def _health_checker(
    registry: Registry,
    session: aiohttp.ClientSession,
    settings: LBSettings,
    rng: random.Random,
    clock: Clock,
    metrics: LBMetrics,
) -> HealthChecker:
    def on_check(instance: Instance, result: CheckResult) -> None:
        metrics.health_checks.labels(instance.id, "pass" if result.ok else "fail").inc()
        metrics.health_check_duration.observe(result.duration_s)

    return HealthChecker(registry, session, settings, rng, clock, on_result=on_check)


def _wire(parts: Components) -> None:
    """Subscribe the parts to each other's changes."""
    registry, router, outliers = parts.registry, parts.router, parts.outliers
    parts.metrics.watch(
        lambda: registry.snapshot,
        lambda: len(router.queue),
        lambda: outliers.ejections_total,
    )
    parts.membership.on_change(parts.state_file.mark_dirty)

    def forget(instance_id: str) -> None:
        parts.metrics.forget_instance(instance_id)
        parts.affinity.forget_instance(instance_id)
        parts.upstreams.retain({i.url for i in registry.snapshot.instances})

    parts.membership.on_removal(forget)


def _load_instances(parts: Components) -> None:
    """The static instances from the settings, then those the state file remembers."""
    settings, registry = parts.settings, parts.registry
    now = parts.clock()
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
    parts.membership.apply_records(
        [r for r in load_records(parts.state_file.path) if r["url"] not in static_urls]
    )


def make_backend(parts: Components) -> ScalingBackend | None:
    settings = parts.settings
    if settings.autoscale == "local":
        from lb.autoscaler.backends.local import LocalBackend

        return LocalBackend(
            parts.membership,
            settings.data_dir,
            check_now=parts.health.check,
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
            parts.membership,
            parts.registry,
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
            parts.membership,
            parts.registry,
        )
    return None


async def _close_idle_upstreams(upstreams: Upstreams) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(UPSTREAM_IDLE_S / 3)
        upstreams.close_idle(loop.time() - UPSTREAM_IDLE_S)


async def _background(app: web.Application) -> AsyncIterator[None]:
    parts = app[COMPONENTS]
    parts.health.start()
    loops: list[Coroutine[Any, Any, None]] = [
        parts.membership.run_sweeper(),
        parts.state_file.run(),
        _close_idle_upstreams(parts.upstreams),
    ]
    if parts.redis_registry is not None:
        loops.append(parts.redis_registry.run())
    if parts.autoscaler is not None:
        loops.append(parts.autoscaler.run())
    tasks = [asyncio.create_task(loop, name="lb-background") for loop in loops]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    parts.outliers.stop()
    await parts.health.stop()
    parts.upstreams.close()
    await parts.session.close()


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
        self.components: Components | None = None
        self._server: ProxyServer | None = None
        self._admin_runner: web.AppRunner | None = None
        self.proxy_port = 0

    async def start(self) -> None:
        settings = self.settings
        if not settings.admin_token and not is_loopback(settings.admin_host):
            raise ConfigError(
                f"LB_ADMIN_HOST={settings.admin_host} is not a loopback address: "
                "set LB_ADMIN_TOKEN so the admin API is not open to the network"
            )
        parts = build_components(settings, clock=self._clock, rng=self._rng)
        self.components = parts
        app = admin_app(parts)
        app.cleanup_ctx.append(_background)
        self._admin_runner = web.AppRunner(app, access_log=None)
        await self._admin_runner.setup()
        await web.TCPSite(self._admin_runner, settings.admin_host, settings.admin_port).start()
        self._server = ProxyServer(
            parts.proxy.serve,
            shutdown_state=parts.shutdown,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            keepalive_timeout_s=CLIENT_KEEPALIVE_S,
            body_timeout_s=settings.client_body_timeout_s,
            header_timeout_s=settings.client_header_timeout_s,
            max_connections=settings.max_connections,
        )
        self.proxy_port = await self._server.start(settings.host, settings.port)
        log.info(
            "lb_started",
            proxy=f"http://{settings.host}:{self.proxy_port}",
            admin=f"http://{settings.admin_host}:{self.admin_port}",
            strategy=settings.strategy,
            instances=len(parts.registry.snapshot.instances),
            max_connections=self._server.cap.limit,
        )

    @property
    def server(self) -> ProxyServer | None:
        """The proxy port's server while running (a read-only view for metrics and tests)."""
        return self._server

    @property
    def admin_port(self) -> int:
        assert self._admin_runner is not None
        return int(self._admin_runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting, drain in-flight work up to the shutdown timeout, then close."""
        if self.components is not None:
            self.components.shutdown.begin()
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
