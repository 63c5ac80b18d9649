"""Webhooks: a run's own ``webhook`` URL, and hooks registered for ``graph.*`` events.

A run's webhook gets the run (as ``GET .../runs/{id}`` shows it) plus ``values``/``error``
when the run ends, like LangGraph Platform. Registered hooks (``WORKER_WEBHOOK_URLS``) get
``{"event": "graph.started"|"graph.completed"|"graph.failed", "run": ...}``. Bodies are
signed with HMAC-SHA256 (``X-Graphfleet-Signature: sha256=<hex>``) when a secret is set,
and retried with exponential backoff and jitter. Delivery never blocks or fails a run.

``WebhookSender`` is a ``RunObserver``: the run service's events feed it, not the HTTP layer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from worker import jsonutil
from worker.errors import Unprocessable
from worker.runs.active import ActiveRun
from worker.runs.model import run_view
from worker.settings import WorkerSettings
from worker.store.base import RunRecord

log = structlog.get_logger("worker.webhooks")

_EVENT_BY_STATE = {"success": "graph.completed", "error": "graph.failed", "timeout": "graph.failed"}


def check_url(url: str, *, allow_loopback: bool) -> None:
    """Refuse (422) URLs that are not absolute http(s), or that point inside this host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable(
            f"webhook {url!r} is not an absolute http(s) URL", code="invalid_webhook"
        )
    if allow_loopback:
        return
    host = parts.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        internal = host == "localhost" or host.endswith(".localhost")
    else:
        internal = address.is_loopback or address.is_private or address.is_link_local
    if internal:
        raise Unprocessable(
            f"webhook {url!r} points at a loopback or private address "
            "(allow with WORKER_WEBHOOK_ALLOW_LOOPBACK)",
            code="invalid_webhook",
        )


class WebhookSender:
    """A ``RunObserver`` that delivers webhooks in background tasks; ``close()`` cancels them."""

    def __init__(
        self,
        settings: WorkerSettings,
        session: aiohttp.ClientSession,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._session = session
        self._rng = rng
        self._tasks: set[asyncio.Task[None]] = set()

    def check_url(self, url: str) -> None:
        check_url(url, allow_loopback=self._settings.webhook_allow_loopback)

    def run_started(self, run: ActiveRun) -> None:
        view = run_view(run.record) | {"status": run.state}
        self._send_hooks("graph.started", view)

    def run_ended(self, run: ActiveRun) -> None:
        now = datetime.now(UTC).isoformat()
        view = run_view(run.record) | {
            "status": run.state,
            "run_ended_at": now,
            "webhook_sent_at": now,
        }
        outcome = run.outcome
        if outcome is not None:
            view["values"] = outcome.output
            if outcome.error:
                view["error"] = outcome.error
        if run.spec.webhook:
            self._send(run.spec.webhook, view, "run.ended")
        hook_event = _EVENT_BY_STATE.get(run.state)
        if hook_event is not None:
            self._send_hooks(hook_event, view)

    def run_abandoned(self, record: RunRecord) -> None:
        now = datetime.now(UTC).isoformat()
        view = run_view(record) | {
            "status": record.status,
            "run_ended_at": now,
            "webhook_sent_at": now,
            "values": None,
            "error": record.error,
        }
        webhook = record.kwargs.get("webhook")
        if isinstance(webhook, str) and webhook:
            self._send(webhook, view, "run.ended")
        self._send_hooks("graph.failed", view)

    def _send_hooks(self, event: str, view: dict[str, Any]) -> None:
        """``event`` to every registered hook (``WORKER_WEBHOOK_URLS``)."""
        for url in self._settings.webhook_urls:
            self._send(url, {"event": event, "run": view}, event)

    def _send(self, url: str, body: Any, event: str) -> None:
        task = asyncio.create_task(self._deliver(url, jsonutil.dumps(body), event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: bytes, event: str) -> None:
        headers = {"Content-Type": "application/json", "X-Graphfleet-Event": event}
        if self._settings.webhook_secret:
            digest = hmac.new(self._settings.webhook_secret.encode(), body, hashlib.sha256)
            headers["X-Graphfleet-Signature"] = "sha256=" + digest.hexdigest()
        timeout = aiohttp.ClientTimeout(total=self._settings.webhook_timeout_s)
        attempts = self._settings.webhook_attempts
        for attempt in range(attempts):
            try:
                async with self._session.post(
                    url, data=body, headers=headers, timeout=timeout
                ) as response:
                    if response.status < 500 and response.status != 429:
                        if response.status >= 400:
                            log.warning("webhook_refused", url=url, status=response.status)
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = type(exc).__name__
            if attempt + 1 < attempts:
                delay = self._settings.webhook_backoff_s * 2**attempt
                await asyncio.sleep(delay * (1 + 0.25 * self._rng()))
        log.warning("webhook_not_delivered", url=url, attempts=attempts, reason=reason)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
