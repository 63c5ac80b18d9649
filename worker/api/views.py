"""Records and LangGraph snapshots as the LangGraph Server's JSON (the SDK's TypedDicts)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from worker import jsonutil
from worker.store.base import ThreadRecord
from worker.store.storage import ThreadStorage


def checkpoint_view(config: RunnableConfig | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable") or {}
    return {
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def state_view(snapshot: StateSnapshot) -> dict[str, Any]:
    tasks = [
        {
            "id": task.id,
            "name": task.name,
            # Where the task comes from: ("__pregel_pull", node) or ("__pregel_push", index,
            # ...) for a Send; the JS SDK maps a Send's tool call to its subgraph by it.
            "path": jsonutil.to_jsonable(list(task.path)),
            "error": repr(task.error) if task.error else None,
            "interrupts": jsonutil.to_jsonable(list(task.interrupts)),
            "checkpoint": None,
            "state": state_view(task.state) if isinstance(task.state, StateSnapshot) else None,
            "result": jsonutil.to_jsonable(task.result) if task.result is not None else None,
        }
        for task in snapshot.tasks
    ]
    return {
        "values": jsonutil.to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "checkpoint": checkpoint_view(snapshot.config),
        "metadata": jsonutil.to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_view(snapshot.parent_config),
        "tasks": tasks,
        "interrupts": jsonutil.to_jsonable(list(snapshot.interrupts)),
    }


def empty_state(thread_id: str) -> dict[str, Any]:
    """The state of a thread no run has touched yet."""
    return {
        "values": {},
        "next": [],
        "checkpoint": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": None,
            "checkpoint_map": None,
        },
        "metadata": {},
        "created_at": None,
        "parent_checkpoint": None,
        "tasks": [],
        "interrupts": [],
    }


def thread_view(record: ThreadRecord, snapshot: StateSnapshot | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "thread_id": record.thread_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "state_updated_at": record.updated_at.isoformat(),
        "metadata": record.metadata,
        "status": record.status,
        "config": {},
        # A thread with no checkpoint yet has no values and no interrupts key, as on the
        # official server.
        "values": None,
    }
    if snapshot is not None:
        view["values"] = jsonutil.to_jsonable(snapshot.values)
        view["interrupts"] = {
            task.id: jsonutil.to_jsonable(list(task.interrupts))
            for task in snapshot.tasks
            if task.interrupts
        }
    return view


def ttl_view(record: ThreadRecord) -> dict[str, Any] | None:
    """A thread's TTL as ``GET /threads/{id}?include=ttl`` shows it (None: it has none);
    ``expires_at`` is None while the expiry is disarmed (pruned, awaiting activity)."""
    if record.ttl is None:
        return None
    expires = record.ttl_expires_at
    return {
        "strategy": record.ttl.strategy,
        "ttl_minutes": record.ttl.minutes,
        "expires_at": expires.isoformat() if expires is not None else None,
    }


def storage_view(thread_id: str, storage: ThreadStorage) -> dict[str, Any]:
    """``GET /threads/{id}/storage`` (the official ``ThreadStorage``; see
    ``worker.store.storage`` for what each section counts on each store)."""
    by_channel = {
        channel: {"versions": entry.versions, "bytes": entry.bytes}
        for channel, entry in sorted(storage.by_channel.items())
    }
    return {
        "thread_id": thread_id,
        "total_bytes": storage.total_bytes,
        "checkpoints": {"count": storage.checkpoint_count, "bytes": storage.checkpoint_bytes},
        "channel_values": {
            "count": sum(entry.versions for entry in storage.by_channel.values()),
            "bytes": storage.channel_bytes,
            "by_channel": by_channel,
        },
        "pending_writes": {"count": storage.write_count, "bytes": storage.write_bytes},
    }
