"""The worker application: components, their lifecycles, routes, and the ordered shutdown.

Every long-lived resource is a ``cleanup_ctx`` generator (set up in order, torn down in
reverse): the HTTP client session, then the store (with LangGraph's store in it) with the
graphs and the run manager, then the cron tick and the thread TTL sweep, then registration
with the LB (whose heartbeat task is cancelled and awaited). ``drain()`` is the first half
of a graceful stop; ``AppRunner.cleanup()`` is the second.
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
from langgraph.store.base import BaseStore

from common.urls import redact
from worker.api import (
    assistants,
    crons,
    fleet,
    history,
    ops,
    run_extras,
    runs,
    simple,
    store,
    thread_ops,
    thread_stream,
    threads,
    ws,
)
from worker.api import webhooks as webhook_api
from worker.api.errors import error_middleware
from worker.crons.scheduler import CronScheduler
from worker.graphs import GraphLoadError, GraphRegistry, compile_graphs, load_graph_objects
from worker.keys import (
    FEED,
    GRAPH_OBJECTS,
    GRAPHS,
    HTTP_SESSION,
    MANAGER,
    MEMORY,
    METRICS,
    PEER_COMMANDS,
    REGISTRATION,
    RELAY,
    SERVICE,
    SETTINGS,
    SQL_TRACE,
    STARTED_AT,
    STORE,
    THREAD_TTL,
    WEBHOOK_RESOLVE,
    WEBHOOKS,
)
from worker.membership import LBRegistration
from worker.metrics import WorkerMetrics
from worker.runs.assistants import ensure_default_assistants
from worker.runs.cancelling import Canceller
from worker.runs.events import GraphFeed
from worker.runs.manager import RunManager
from worker.runs.peers import PeerCommands
from worker.runs.recovery import Recovery
from worker.runs.relay import RedisRelay, Relay
from worker.runs.service import RunService
from worker.settings import WorkerSettings
from worker.store import Store, create_store
from worker.store.base import SqlTrace
from worker.store.memory import open_memory, read_memory_config
from worker.store.thread_ttl import TTLConfig, TTLConfigError, read_ttl_config
from worker.ttl.sweeper import ThreadTTLSweeper
from worker.webhooks import Resolve, Webhooks, system_resolve

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


async def _open_store(
    settings: WorkerSettings,
    objects: dict[str, Any],
    ttl: TTLConfig,
    stack: contextlib.AsyncExitStack,
    trace: SqlTrace | None,
) -> tuple[Store, BaseStore, GraphRegistry]:
    """The opened store, LangGraph's store in it, and the graphs compiled on both; what is
    opened is closed by ``stack``."""
    store = create_store(
        settings.store,
        lease_s=settings.run_lease_s,
        pool_size=settings.store_pool_size,
        prepared_statements=settings.store_prepared_statements,
        sqlite_synchronous=settings.sqlite_synchronous,
        postgres_synchronous_commit=settings.postgres_synchronous_commit,
        default_ttl=ttl.default,
        trace=trace,
    )
    await store.open()
    stack.push_async_callback(store.close)
    memory = await stack.enter_async_context(
        open_memory(store, read_memory_config(settings.graphs))
    )
    graphs = await compile_graphs(objects, store.checkpointer, memory)
    await ensure_default_assistants(store, graphs)
    # Runs a previous life of this worker held cannot be running: claimable at once.
    left = await store.release_runs(settings.worker_id)
    if left:
        log.warning("previous_life_runs_released", count=left)
    # Where this worker's leases can be checked on: see worker.runs.recovery.
    await store.record_worker(settings.worker_id, settings.url)
    return store, memory, graphs


def _runs(app: web.Application, store: Store, graphs: GraphRegistry, relay: Relay) -> Recovery:
    """The run manager, the run service and webhooks, in ``app``; returns the recovery loops."""
    settings = app[SETTINGS]
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
    webhooks = Webhooks(
        settings, store.webhooks, app[METRICS].webhooks, resolve=app[WEBHOOK_RESOLVE]
    )
    manager.outbox.add(webhooks.events)
    manager.observers.add(webhooks)
    service = RunService(
        store=store,
        graphs=graphs,
        manager=manager,
        worker_id=settings.worker_id,
        check_webhook=webhooks.check_url,
    )
    app[STORE], app[GRAPHS], app[RELAY] = store, graphs, relay
    app[PEER_COMMANDS] = PeerCommands(
        relay=relay, store=store, session=app[HTTP_SESSION], worker_id=settings.worker_id
    )
    app[MANAGER], app[SERVICE], app[WEBHOOKS] = manager, service, webhooks
    return Recovery(
        store=store,
        manager=manager,
        service=service,
        relay=relay,
        worker_id=settings.worker_id,
        worker_url=settings.url,
        graph_ids=[e.graph_id for e in graphs],
        lease_s=settings.run_lease_s,
        sweep_interval_s=settings.sweep_interval_s,
        max_attempts=settings.run_max_attempts,
    )


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with contextlib.AsyncExitStack() as stack:
        store, memory, graphs = await _open_store(
            settings, app[GRAPH_OBJECTS], app[THREAD_TTL], stack, app[SQL_TRACE]
        )
        app[MEMORY] = memory
        relay = _relay(settings)
        stack.push_async_callback(relay.close)
        recovery = _runs(app, store, graphs, relay)
        manager = app[MANAGER]
        await relay.start(manager.apply_command)
        await app[WEBHOOKS].start()
        loops = [
            asyncio.create_task(recovery.heartbeat(), name="recovery-heartbeat"),
            asyncio.create_task(recovery.sweep_forever(), name="recovery-sweeper"),
        ]
        app[METRICS].capacity.set(settings.max_concurrency)
        log.info("worker_ready", graphs=graphs.names, store=redact(settings.store))
        yield
        # The heartbeat stops last of all run activity would be better, but release_all()
        # expires the leases anyway: renewing them after that would only delay the claim.
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await manager.close()
        await app[WEBHOOKS].close()


async def _crons(app: web.Application) -> AsyncIterator[None]:
    """This worker's cron tick (see ``worker.crons``): every worker runs one, and each due
    cron fires on exactly one of them."""
    settings = app[SETTINGS]
    scheduler = CronScheduler(
        store=app[STORE],
        fire=crons.cron_firer(app[MANAGER], app[SERVICE]),
        worker_id=settings.worker_id,
        interval_s=settings.cron_interval_s,
        claim_s=settings.cron_claim_s,
        paused=lambda: app[MANAGER].draining,
    )
    task = asyncio.create_task(scheduler.run_forever(), name="cron-scheduler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# Used when neither WORKER_THREAD_TTL_SWEEP_S nor langgraph.json sets the interval (the
# official server's is about five minutes too).
DEFAULT_TTL_SWEEP_S = 300.0


async def _thread_ttl(app: web.Application) -> AsyncIterator[None]:
    """This worker's thread TTL sweep (see ``worker.ttl``): every worker runs one, and each
    expired thread is deleted or pruned by exactly one of them."""
    settings, config, manager = app[SETTINGS], app[THREAD_TTL], app[MANAGER]
    # The same way to another worker's runs as the API's cancels: Redis, else a stop call.
    canceller = Canceller(manager, app[PEER_COMMANDS], app[STORE], settings.worker_id)

    async def stop_thread(thread_id: str) -> None:
        await canceller.stop_thread(
            thread_id, timeout_s=settings.run_lease_s, poll_s=settings.remote_poll_s
        )

    sweeper = ThreadTTLSweeper(
        store=app[STORE],
        stop_thread=stop_thread,
        worker_id=settings.worker_id,
        interval_s=settings.thread_ttl_sweep_s or config.sweep_interval_s or DEFAULT_TTL_SWEEP_S,
        # Stopping a thread's runs waits up to a run lease: the claim outlasts that.
        claim_s=settings.run_lease_s * 3,
        limit=config.sweep_limit,
        paused=lambda: manager.draining,
    )
    task = asyncio.create_task(sweeper.run_forever(), name="thread-ttl-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _registration(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.lb_admin_url:
        yield
        return
    manager = app[MANAGER]
    registration = LBRegistration(settings, app[HTTP_SESSION], is_draining=lambda: manager.draining)
    app[REGISTRATION] = registration
    heartbeat = asyncio.create_task(registration.heartbeat(), name="registration-heartbeat")
    yield
    heartbeat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await heartbeat
    await registration.deregister()


async def drain(app: web.Application) -> bool:
    """Stop taking runs and let the running ones finish, at most ``SHUTDOWN_TIMEOUT_S``.

    ``/health`` answers 503 from the first line on, so the LB stops routing new work here.
    Returns True when every run ended in time; the rest are released (not failed): another
    worker claims them and resumes them from their last checkpoint.
    """
    settings, manager = app[SETTINGS], app[MANAGER]
    manager.begin_drain()
    log.info("worker_draining", running=manager.running, queued=manager.queued)
    if REGISTRATION in app:
        await app[REGISTRATION].announce_drain()
    idle = await manager.wait_idle(settings.shutdown_timeout_s)
    if not idle:
        log.warning(
            "shutdown_timeout_runs_released",
            remaining=manager.load,
            timeout_s=settings.shutdown_timeout_s,
        )
        await manager.release_all()
    return idle


def create_app(
    settings: WorkerSettings,
    graph_objects: dict[str, Any] | None = None,
    *,
    webhook_resolve: Resolve = system_resolve,
    sql_trace: SqlTrace | None = None,
) -> web.Application:
    """The worker app; ``graph_objects`` defaults to the graphs of ``settings.graphs``;
    ``webhook_resolve`` answers the DNS questions of webhook deliveries (tests inject one);
    ``sql_trace`` hears every SQL statement of the store (diagnostics, tests).

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
    app[WEBHOOK_RESOLVE] = webhook_resolve
    app[SQL_TRACE] = sql_trace
    try:
        app[THREAD_TTL] = read_ttl_config(settings.graphs)
    except TTLConfigError as exc:
        raise GraphLoadError(str(exc)) from exc
    app.cleanup_ctx.extend([_http_session, _runtime, _crons, _thread_ttl, _registration])
    for module in (
        ops,
        assistants,
        threads,
        thread_ops,
        thread_stream,
        history,
        runs,
        run_extras,
        crons,
        store,
        simple,
        ws,
        webhook_api,
        fleet,
    ):
        module.add_routes(app)
    return app
