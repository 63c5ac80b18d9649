"""Webhooks that arrive: registered hooks, hooks fixed by configuration, a run's own URL.

A run's status change writes its events to the store's outbox in the same transaction
(``events.WebhookEvents`` is the run manager's event source); every worker's ``Dispatcher``
claims due deliveries with a lease and sends them, signed per Standard Webhooks
(``signing``), retried with backoff (``retry``), only to allowed addresses (``addresses``).
``Webhooks`` puts the pieces together for the app; the HTTP API is ``worker.api.webhooks``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import aiohttp

from worker.metrics import WebhookMetrics
from worker.runs.active import ActiveRun
from worker.settings import WorkerSettings
from worker.store.base import RunRecord
from worker.store.webhooks import WebhookStore
from worker.webhooks.addresses import (
    AddressPolicy,
    GuardedResolver,
    Resolve,
    allowed_networks,
    system_resolve,
)
from worker.webhooks.dispatcher import Dispatcher
from worker.webhooks.events import WebhookEvents
from worker.webhooks.hooks import HookRegistry
from worker.webhooks.sender import Sender

__all__ = ["Resolve", "Webhooks"]


class Webhooks:
    """The webhook machinery of one worker: ``start()`` after the store opened, ``close()``
    before it closes. Also a ``RunObserver``: a run's events, already in the outbox when
    it is told, wake the dispatcher -- when they made deliveries (most runs' events go to
    nobody: no hook is registered for them), so runs alone never make it look."""

    def __init__(
        self,
        settings: WorkerSettings,
        store: WebhookStore,
        metrics: WebhookMetrics,
        *,
        resolve: Resolve = system_resolve,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._rng = rng
        self.policy = AddressPolicy(allowed_networks(settings.webhook_allow_networks), resolve)
        self.events = WebhookEvents(settings.webhook_urls)
        self.hooks = HookRegistry(store, self.policy, self.events, self.wake)
        self._session: aiohttp.ClientSession | None = None
        self._dispatcher: Dispatcher | None = None
        self._loop: asyncio.Task[None] | None = None
        self._deliveries_seen = 0

    async def check_url(self, url: str) -> None:
        """422 unless ``url`` may receive webhooks (a run's own ``webhook``)."""
        await self.policy.check_url(url)

    def wake(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.wake()

    def _wake_for_deliveries(self) -> None:
        written = self._store.deliveries_written
        if written != self._deliveries_seen:
            self._deliveries_seen = written
            self.wake()

    def run_started(self, run: ActiveRun) -> None:
        self._wake_for_deliveries()

    def run_ended(self, run: ActiveRun) -> None:
        self._wake_for_deliveries()

    def run_abandoned(self, record: RunRecord) -> None:
        self.wake()

    async def start(self) -> None:
        settings = self._settings
        # No DNS cache: each attempt resolves (and checks) the name afresh.
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.policy),
            use_dns_cache=False,
            limit=settings.webhook_concurrency,
        )
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        sender = Sender(
            self._session,
            self.policy,
            timeout_s=settings.webhook_timeout_s,
            config_secret=settings.webhook_secret,
        )
        self._dispatcher = Dispatcher(
            store=self._store,
            sender=sender,
            settings=settings,
            metrics=self._metrics,
            rng=self._rng,
        )
        self._loop = asyncio.create_task(self._dispatcher.run(), name="webhook-dispatcher")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        if self._dispatcher is not None:
            await self._dispatcher.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
