"""Assistant request bodies and JSON views, as the LangGraph Server's OpenAPI document has them.

Bodies forbid unknown fields (422 naming the field), like every body of this worker.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from worker.api.schemas import Body
from worker.store.base import AssistantRecord, AssistantVersion

AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]


class ConfigBody(Body):
    """A RunnableConfig as the API takes it: the three keys it names, others kept."""

    model_config = Body.model_config | {"extra": "allow"}

    tags: list[str] | None = None
    recursion_limit: int | None = None
    configurable: dict[str, Any] | None = None


def _config(config: ConfigBody | None) -> dict[str, Any] | None:
    return None if config is None else config.model_dump(exclude_none=True)


class AssistantCreateBody(Body):
    assistant_id: str | None = None
    graph_id: str
    config: ConfigBody | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None

    @property
    def config_dict(self) -> dict[str, Any] | None:
        return _config(self.config)


class AssistantPatchBody(Body):
    graph_id: str | None = None
    config: ConfigBody | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None

    @property
    def config_dict(self) -> dict[str, Any] | None:
        return _config(self.config)


class AssistantCountBody(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantSearchBody(AssistantCountBody):
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = None


class AssistantVersionsBody(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class AssistantVersionBody(Body):
    version: int | None = None  # missing: no such version (404), as on the official server


def assistant_view(assistant: AssistantRecord) -> dict[str, Any]:
    """The ``Assistant`` of the API (the SDK's TypedDict)."""
    return {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "config": assistant.config,
        "context": assistant.context,
        "created_at": assistant.created_at.isoformat(),
        "updated_at": assistant.updated_at.isoformat(),
        "metadata": assistant.metadata,
        "version": assistant.version,
        "name": assistant.name,
        "description": assistant.description,
    }


def version_view(version: AssistantVersion) -> dict[str, Any]:
    """One entry of ``/assistants/{id}/versions`` (no ``updated_at``: versions never change)."""
    return {
        "assistant_id": version.assistant_id,
        "version": version.version,
        "graph_id": version.graph_id,
        "config": version.config,
        "context": version.context,
        "metadata": version.metadata,
        "created_at": version.created_at.isoformat(),
        "name": version.name,
        "description": version.description,
    }


def select_fields(
    views: list[dict[str, Any]], select: list[AssistantField] | None
) -> list[dict[str, Any]]:
    """Only the ``select``ed keys of each view (all of them without ``select``)."""
    if not select:
        return views
    keep = set(select)
    return [{k: v for k, v in view.items() if k in keep} for view in views]
