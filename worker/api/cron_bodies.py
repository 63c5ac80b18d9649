"""Request bodies of the cron endpoints, as the official OpenAPI document describes them.

Unlike the run bodies, these accept unknown fields: the official schemas do, and a cron's
``payload`` keeps the body as sent (each firing reads the run fields from it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.api.schemas import StreamModes
from worker.errors import Unprocessable
from worker.runs.model import RunSpec

CRON_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CronCreateBody(_Open):
    assistant_id: str
    schedule: str
    timezone: str | None = None
    end_time: datetime | None = None
    input: dict[str, Any] | list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    multitask_strategy: Literal["reject", "rollback", "interrupt", "enqueue"] | None = None
    enabled: bool = True
    stream_mode: StreamModes | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: bool | None = None

    def run_spec(self, *, stateless: bool, keep: bool) -> RunSpec:
        """The run one firing creates. ``keep`` keeps a stateless run's thread."""
        durability = self.durability
        if durability is None and self.checkpoint_during is not None:  # the old spelling
            durability = "async" if self.checkpoint_during else "exit"
        return RunSpec(
            input=self.input,
            config=self.config or {},
            context=self.context,
            stream_mode=self.stream_mode or ["values"],
            stream_subgraphs=bool(self.stream_subgraphs),
            stream_resumable=bool(self.stream_resumable),
            interrupt_before=self.interrupt_before,
            interrupt_after=self.interrupt_after,
            durability=durability,
            on_completion="delete" if stateless and not keep else "keep",
            webhook=self.webhook,
        )


class CronPatchBody(_Open):
    schedule: str | None = None
    timezone: str | None = None
    end_time: datetime | None = None
    input: dict[str, Any] | list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool | None = None


class CronSearchBody(_Open):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: (
        Literal[
            "cron_id",
            "assistant_id",
            "thread_id",
            "next_run_date",
            "end_time",
            "created_at",
            "updated_at",
        ]
        | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


class CronCountBody(_Open):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


def check_uuid(value: str | None, what: str) -> None:
    """422 ``Invalid {what} ID: must be a UUID`` unless ``value`` is None or a UUID."""
    if value is None:
        return
    try:
        uuid.UUID(value)
    except ValueError:
        raise Unprocessable(f"Invalid {what} ID: must be a UUID", code="invalid_id") from None


def check_select(select: list[str] | None) -> list[str] | None:
    if not select:
        return None
    invalid = [column for column in select if column not in CRON_FIELDS]
    if invalid:
        raise Unprocessable(
            f"Invalid select columns: {invalid}. Expected: {set(CRON_FIELDS)}",
            code="invalid_select",
        )
    return select
