"""Registration with the LB: register with its admin API, heartbeat, drain notice, deregister.

``POST {LB_ADMIN_URL}/admin/instances`` with ``{"id", "url", "max_capacity"}`` is idempotent by
id, so the heartbeat is the same call repeated. When the worker drains it stops heartbeating
and tells the LB (``POST .../{id}/drain``); after its runs have ended it deregisters
(``DELETE .../{id}``). The LB being unreachable is logged and retried, never fatal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog

from worker.settings import WorkerSettings

log = structlog.get_logger("worker.membership")


class LBRegistration:
    """Talks to the LB admin API for one worker; every call is best-effort."""

    def __init__(
        self,
        settings: WorkerSettings,
        session: aiohttp.ClientSession,
        *,
        is_draining: Callable[[], bool],
    ) -> None:
        if not settings.lb_admin_url:
            raise ValueError("LBRegistration needs WORKER_LB_ADMIN_URL")
        self._settings = settings
        self._session = session
        self._is_draining = is_draining
        self._base = settings.lb_admin_url.rstrip("/") + "/admin/instances"
        self._headers = (
            {"Authorization": f"Bearer {settings.lb_admin_token}"}
            if settings.lb_admin_token
            else {}
        )
        self._timeout = aiohttp.ClientTimeout(total=settings.lb_timeout_s)
        self.registered = False

    @property
    def instance_id(self) -> str:
        return self._settings.worker_id

    async def _call(self, method: str, url: str, json: Any = None) -> bool:
        try:
            async with self._session.request(
                method, url, json=json, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status >= 400 and not (method == "DELETE" and response.status == 404):
                    body = (await response.text())[:200]
                    log.warning(
                        "lb_admin_call_refused",
                        method=method,
                        url=url,
                        status=response.status,
                        body=body,
                    )
                    return False
                return True
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "lb_admin_unreachable",
                method=method,
                url=url,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False

    async def register(self) -> bool:
        body = {
            "id": self.instance_id,
            "url": self._settings.url,
            "max_capacity": self._settings.max_concurrency,
        }
        ok = await self._call("POST", self._base, body)
        if ok and not self.registered:
            log.info("lb_registered", instance_id=self.instance_id, url=self._settings.url)
        self.registered = self.registered or ok
        return ok

    async def heartbeat(self) -> None:
        """Register now, then again every interval, until cancelled or draining."""
        while not self._is_draining():
            await self.register()
            await asyncio.sleep(self._settings.registration_interval_s)

    async def announce_drain(self) -> None:
        await self._call("POST", f"{self._base}/{self.instance_id}/drain")

    async def deregister(self) -> None:
        if await self._call("DELETE", f"{self._base}/{self.instance_id}"):
            log.info("lb_deregistered", instance_id=self.instance_id)
        self.registered = False
