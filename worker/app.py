"""The worker application: components, their lifecycles, routes, and the ordered shutdown.

Every long-lived resource is a ``cleanup_ctx`` generator (set up in order, torn down in
reverse): the HTTP client session, then the store with the graphs and the run manager,
then fleet membership (whose heartbeat task is cancelled and awaited). ``drain()`` is the
first half of a graceful stop; ``AppRunner.cleanup()`` is the second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from common.urls import redact
from worker.api import assistants, ops, runs, simple, threads, ws
from worker.api.errors import error_middleware
from worker.fleet import FleetMembership
from worker.graphs import compile_graphs, load_graph_objects
from worker.keys import (
    FEED,
    FLEET,
    GRAPH_OBJECTS,
    GRAPHS,
    HTTP_SESSION,
    MANAGER,
    METRICS,
    RELAY,
    SERVICE,
    SETTINGS,
    STARTED_AT,
    STORE,
    WEBHOOKS,
)
from worker.metrics import WorkerMetrics
from worker.runs.assistants import ensure_default_assistants
from worker.runs.events import GraphFeed
from worker.runs.manager import RunManager
from worker.runs.recovery import Recovery
from worker.runs.relay import RedisRelay, Relay
from worker.runs.service import RunService
from worker.settings import WorkerSettings
from worker.store import create_store
from worker.webhooks import WebhookSender

log = structlog.get_logger("worker.app")


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[HTTP_SESSION] = session
        yield


def _relay(settings: WorkerSettings) -> Relay:
    if not settings.redis_url:
        return Relay()
    return RedisRelay(
        settings.redis_url,
        worker_id=settings.worker_id,
        prefix=settings.redis_prefix,
        max_events=settings.stream_buffer_events,
        stream_ttl_s=max(settings.stream_retention_s, settings.run_lease_s * 2),
        result_ttl_s=settings.result_ttl_s,
    )


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = create_store(
        settings.store, lease_s=settings.run_lease_s, pool_size=settings.store_pool_size
    )
    await store.open()
    relay = _relay(settings)
    try:
        objects: dict[str, Any] = app[GRAPH_OBJECTS]
        graphs = compile_graphs(objects, store.checkpointer)
        await ensure_default_assistants(store, graphs)
        # Runs a previous life of this worker held cannot be running: claimable at once.
        left = await store.release_runs(settings.worker_id)
        if left:
            log.warning("released runs a previous life of this worker left", count=left)
        manager = RunManager(
            store=store,
            worker_id=settings.worker_id,
            max_concurrency=settings.max_concurrency,
            metrics=app[METRICS],
            feed=app[FEED],
            buffer_events=settings.stream_buffer_events,
            retention_s=settings.stream_retention_s,
            relay=relay,
        )
        webhooks = WebhookSender(settings, app[HTTP_SESSION])
        manager.listeners.append(webhooks.on_run_event)
        app[STORE], app[GRAPHS], app[MANAGER], app[WEBHOOKS] = store, graphs, manager, webhooks
        app[RELAY] = relay
        service = RunService(
            store=store,
            graphs=graphs,
            manager=manager,
            worker_id=settings.worker_id,
            check_webhook=webhooks.check_url,
        )
        app[SERVICE] = service
        recovery = Recovery(
            store=store,
            manager=manager,
            service=service,
            relay=relay,
            worker_id=settings.worker_id,
            graph_ids=[e.graph_id for e in graphs],
            lease_s=settings.run_lease_s,
            sweep_interval_s=settings.sweep_interval_s,
            max_attempts=settings.run_max_attempts,
            on_abandoned=webhooks.on_run_abandoned,
        )
        await relay.start(manager.apply_command)
        loops = [
            asyncio.create_task(recovery.heartbeat(), name="recovery-heartbeat"),
            asyncio.create_task(recovery.sweep_forever(), name="recovery-sweeper"),
        ]
        app[METRICS].capacity.set(settings.max_concurrency)
        log.info("worker ready", graphs=graphs.names, store=redact(settings.store))
        yield
        # The heartbeat stops last of all run activity would be better, but release_all()
        # expires the leases anyway: renewing them after that would only delay the claim.
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await manager.close()
        await webhooks.close()
    finally:
        await relay.close()
        await store.close()


async def _fleet(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.lb_admin_url:
        yield
        return
    manager = app[MANAGER]
    fleet = FleetMembership(settings, app[HTTP_SESSION], is_draining=lambda: manager.draining)
    app[FLEET] = fleet
    heartbeat = asyncio.create_task(fleet.heartbeat(), name="fleet-heartbeat")
    yield
    heartbeat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await heartbeat
    await fleet.deregister()


async def drain(app: web.Application) -> bool:
    """Stop taking runs and let the running ones finish, at most ``SHUTDOWN_TIMEOUT_S``.

    ``/health`` answers 503 from the first line on, so the LB stops routing new work here.
    Returns True when every run ended in time; the rest are released (not failed): another
    worker claims them and resumes them from their last checkpoint.
    """
    settings, manager = app[SETTINGS], app[MANAGER]
    manager.begin_drain()
    log.info("draining", running=manager.running, queued=manager.queued)
    if FLEET in app:
        await app[FLEET].announce_drain()
    idle = await manager.wait_idle(settings.shutdown_timeout_s)
    if not idle:
        log.warning(
            "shutdown timeout reached; releasing the remaining runs to the fleet",
            remaining=manager.load,
            timeout_s=settings.shutdown_timeout_s,
        )
        await manager.release_all()
    return idle


def create_app(
    settings: WorkerSettings, graph_objects: dict[str, Any] | None = None
) -> web.Application:
    """The worker app; ``graph_objects`` defaults to the graphs of ``settings.graphs``.

    Graphs are imported here, before anything is opened, so a bad langgraph.json fails
    with ``GraphLoadError`` at once.
    """
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[GRAPH_OBJECTS] = (
        graph_objects if graph_objects is not None else load_graph_objects(settings.graphs)
    )
    app[METRICS] = WorkerMetrics()
    app[FEED] = GraphFeed()
    app[STARTED_AT] = datetime.now(UTC)
    app.cleanup_ctx.extend([_http_session, _runtime, _fleet])
    for module in (ops, assistants, threads, runs, simple, ws):
        module.add_routes(app)
    return app
