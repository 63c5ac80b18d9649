"""A registry shared by several LB processes through Redis.

Membership (which instances exist, their URL, capacity, weight, drain) is kept in one Redis
hash; every change is published on a channel so the other LBs pull it at once, and each LB
re-reads the hash every ``resync_interval_s`` in case a notice was missed. Health and in-flight
counts stay local: each LB checks and counts for itself.

Local changes are pushed as per-instance writes (HSET/HDEL of what changed since the last
sync), never as a whole-hash replace, so two LBs registering different workers at the same
moment both win. Before every pull, pending local changes are pushed, so a pull can never undo
a registration that has not reached Redis yet.

Losing Redis degrades to the last known registry with a logged warning — never to an empty
one; local changes made meanwhile are pushed when Redis is back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from common.urls import redact
from lb.fleet.control import Membership

log = structlog.get_logger("lb.fleet.redis_registry")


class RedisRegistry:
    def __init__(
        self,
        url: str,
        membership: Membership,
        key_prefix: str = "graphfleet:lb",
        resync_interval_s: float = 2.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        self._url = url
        self._hash_key = f"{key_prefix}:instances"
        self._channel = f"{key_prefix}:changes"
        self._membership = membership
        self._resync_interval_s = resync_interval_s
        self._poll_interval_s = poll_interval_s
        self._sender = uuid.uuid4().hex
        self._pushed: dict[str, dict[str, Any]] | None = None  # None: never synced
        self._dirty = asyncio.Event()
        self.connected = False
        membership.on_change(self._dirty.set)

    async def run(self) -> None:
        backoff_s = 0.2
        while True:
            try:
                await self._session()
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning(
                        "shared_registry_lost",
                        error=repr(exc),
                        instances=len(self._membership.records()),
                    )
                else:
                    log.warning(
                        "shared_registry_unavailable", error=repr(exc), retry_in_s=backoff_s
                    )
                self.connected = False
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
            else:
                backoff_s = 0.2

    async def _session(self) -> None:
        client = redis.from_url(self._url, socket_connect_timeout=2.0, socket_timeout=5.0)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            await self._sync(client)
            self.connected = True
            log.info("shared_registry_connected", url=redact(self._url))
            next_resync = time.monotonic() + self._resync_interval_s
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self._poll_interval_s
                )
                remote = message is not None and message.get("data") != self._sender.encode()
                if remote or self._dirty.is_set() or time.monotonic() >= next_resync:
                    await self._sync(client)
                    next_resync = time.monotonic() + self._resync_interval_s
        finally:
            await pubsub.aclose()
            await client.aclose()

    async def _sync(self, client: redis.Redis) -> None:
        """Push what changed here since the last sync, then pull the shared membership."""
        self._dirty.clear()
        local = {r["id"]: r for r in self._membership.records()}
        if self._pushed is None:
            # First contact: an existing shared registry wins over this LB's state file;
            # an empty one is seeded from it.
            if not await client.exists(self._hash_key):
                await self._write(client, local, {})
        else:
            await self._write(client, local, self._pushed)
        raw = await client.hgetall(self._hash_key)
        shared = {_text(k): orjson.loads(v) for k, v in raw.items()}
        self._pushed = shared
        self._membership.apply_records(list(shared.values()))
        # apply_records announced a change only if the pull changed something here; that is
        # not a local change to push back.
        self._dirty.clear()

    async def _write(
        self,
        client: redis.Redis,
        local: dict[str, dict[str, Any]],
        before: dict[str, dict[str, Any]],
    ) -> None:
        changed = {k: orjson.dumps(v) for k, v in local.items() if before.get(k) != v}
        removed = [k for k in before if k not in local]
        if not changed and not removed:
            return
        async with client.pipeline(transaction=True) as pipe:
            if changed:
                pipe.hset(self._hash_key, mapping=changed)  # type: ignore[arg-type]
            if removed:
                pipe.hdel(self._hash_key, *removed)
            pipe.publish(self._channel, self._sender)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
