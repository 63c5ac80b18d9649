"""Registered hooks: what the API accepts, what it shows, and the operations on them.

A hook is ``{url, events, headers?, secret?, description?}``. Its URL passes the address
policy when created or changed (422 otherwise); its secret is generated when none is given,
returned once by ``create`` and never again (nor logged). Custom headers may not replace the
ones the delivery sets (framing, ``Content-Type``, ``webhook-*``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.errors import NotFound
from worker.store.webhooks import AttemptRecord, HookRecord, WebhookStore
from worker.webhooks import signing
from worker.webhooks.addresses import AddressPolicy
from worker.webhooks.events import WebhookEvents

EventType = Literal[
    "graph.started", "graph.completed", "graph.failed", "graph.interrupted", "graph.cancelled"
]
MAX_HEADERS = 20
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")  # RFC 9110 §5.6.2
_RESERVED = {
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "user-agent",
}


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    for name, text in value.items():
        if not _TOKEN.match(name):
            raise ValueError(f"{name!r} is not a header name")
        if name.lower() in _RESERVED or name.lower().startswith("webhook-"):
            raise ValueError(f"header {name!r} is set by the delivery itself")
        if len(text) > 1024 or any(c in text for c in "\r\n\0"):
            raise ValueError(f"header {name!r}: value too long or has a control character")
    return value


Url = Annotated[str, Field(min_length=1, max_length=2048)]
Events = Annotated[list[EventType], Field(min_length=1, max_length=len(EventType.__args__))]
Description = Annotated[str, Field(max_length=1000)]


class HookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    events: Events
    headers: dict[str, str] = Field(default_factory=dict)
    secret: str | None = None
    description: Description | None = None

    _headers = field_validator("headers")(_check_headers)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            signing.parse_secret(value)
        return value


class HookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Events | None = None
    headers: dict[str, str] | None = None
    description: Description | None = None
    enabled: bool | None = None

    _headers = field_validator("headers")(_check_headers)


def hook_view(hook: HookRecord) -> dict[str, Any]:
    """A hook as the API shows it: everything but the secret."""
    return {
        "webhook_id": hook.hook_id,
        "url": hook.url,
        "events": hook.events,
        "headers": hook.headers,
        "description": hook.description,
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "failing_since": hook.failing_since.isoformat() if hook.failing_since else None,
        "created_at": hook.created_at.isoformat(),
        "updated_at": hook.updated_at.isoformat(),
    }


def attempt_view(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "delivery_id": attempt.delivery_id,
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "attempt": attempt.attempt,
        "status": attempt.status,
        "status_code": attempt.status_code,
        "duration_s": round(attempt.duration_s, 6),
        "error": attempt.error,
        "next_attempt_at": attempt.next_attempt_at.isoformat() if attempt.next_attempt_at else None,
        "attempted_at": attempt.attempted_at.isoformat(),
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HookRegistry:
    """The operations of the hook API, over the store; ``wake`` pokes the dispatcher."""

    def __init__(
        self,
        store: WebhookStore,
        policy: AddressPolicy,
        events: WebhookEvents,
        wake: Callable[[], None],
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._policy = policy
        self._events = events
        self._wake = wake
        self._clock = clock

    async def create(self, body: HookCreate) -> dict[str, Any]:
        """Register a hook; the answer is the only one that ever shows its ``secret``."""
        await self._policy.check_url(body.url)
        now = self._clock()
        secret = body.secret or signing.generate_secret()
        hook = HookRecord(
            hook_id=str(uuid.uuid4()),
            url=body.url,
            events=list(dict.fromkeys(body.events)),
            headers=body.headers,
            secret=secret,
            description=body.description,
            enabled=True,
            disabled_reason=None,
            failing_since=None,
            created_at=now,
            updated_at=now,
        )
        await self._store.create_hook(hook)
        return hook_view(hook) | {"secret": secret}

    async def get(self, hook_id: str) -> HookRecord:
        hook = await self._store.get_hook(hook_id)
        if hook is None:
            raise NotFound(f"webhook {hook_id} not found", code="webhook_not_found")
        return hook

    async def list_all(self) -> list[dict[str, Any]]:
        return [hook_view(hook) for hook in await self._store.list_hooks()]

    async def update(self, hook_id: str, body: HookPatch) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if "url" in changes:
            await self._policy.check_url(changes["url"])
        if "events" in changes:
            changes["events"] = list(dict.fromkeys(changes["events"]))
        hook = await self._store.update_hook(hook_id, changes) if changes else None
        return hook_view(hook if hook is not None else await self.get(hook_id))

    async def delete(self, hook_id: str) -> None:
        if not await self._store.delete_hook(hook_id):
            raise NotFound(f"webhook {hook_id} not found", code="webhook_not_found")

    async def attempts(self, hook_id: str, limit: int) -> list[dict[str, Any]]:
        await self.get(hook_id)
        return [attempt_view(a) for a in await self._store.list_attempts(hook_id, limit=limit)]

    async def test(self, hook_id: str) -> dict[str, Any]:
        """Queue a ``webhook.test`` event for the hook (enabled or not)."""
        await self.get(hook_id)
        event = self._events.test(hook_id)
        await self._store.add_events([event])
        self._wake()
        return {"event_id": event.event_id, "event_type": event.event_type}
