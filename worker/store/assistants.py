"""The rules of assistant records, shared by both stores (pure: no I/O).

As the LangGraph Server keeps them: an assistant's ``config["configurable"]`` and its
``context`` are one value in two places (context is the newer spelling), so whichever is
given sets both; a patch saves a whole new version, and setting the latest version brings
that version back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.store.base import AssistantPatch, AssistantRecord, AssistantVersion


class ConfigContextConflict(ValueError):
    """Both ``config.configurable`` and ``context`` were given (they are one value)."""

    def __init__(self) -> None:
        super().__init__(
            "Cannot specify both configurable and context. Prefer setting context alone: "
            "context is the long-term replacement for configurable."
        )


def sync_config_context(
    config: Mapping[str, Any] | None, context: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(config, context)`` with ``config["configurable"]`` and ``context`` the same value.

    A non-empty ``configurable`` wins and becomes the context; otherwise a non-empty context
    becomes the configurable. Context stays None when neither was given (a patch keeps the
    old one then). Raises ``ConfigContextConflict`` when both are non-empty.
    """
    config_out = copy.deepcopy(dict(config or {}))
    configurable = config_out.get("configurable")
    if configurable and context:
        raise ConfigContextConflict()
    if configurable:
        return config_out, copy.deepcopy(dict(configurable))
    if context:
        config_out["configurable"] = copy.deepcopy(dict(context))
        return config_out, copy.deepcopy(dict(context))
    return config_out, None if context is None else {}


def new_assistant(
    *,
    assistant_id: str,
    graph_id: str,
    now: datetime,
    config: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
) -> AssistantRecord:
    """A version-1 assistant as ``POST /assistants`` creates it (name defaults to Untitled)."""
    config_out, context_out = sync_config_context(config, context)
    return AssistantRecord(
        assistant_id=assistant_id,
        graph_id=graph_id,
        created_at=now,
        updated_at=now,
        config=config_out,
        context=context_out or {},
        metadata=dict(metadata or {}),
        name=name or "Untitled",
        description=description,
        version=1,
    )


def apply_patch(
    current: AssistantRecord, patch: AssistantPatch, *, version: int, now: datetime
) -> AssistantRecord:
    """``current`` with ``patch`` applied, as version ``version``.

    Metadata merges key by key; an empty or missing config keeps the old one; a missing
    context keeps the old one; other fields are replaced when given.
    """
    config, context = sync_config_context(patch.config, patch.context)
    return AssistantRecord(
        assistant_id=current.assistant_id,
        graph_id=patch.graph_id if patch.graph_id is not None else current.graph_id,
        created_at=current.created_at,
        updated_at=now,
        config=config if config else copy.deepcopy(current.config),
        context=context if context is not None else copy.deepcopy(current.context),
        metadata={**current.metadata, **(patch.metadata or {})},
        name=patch.name if patch.name is not None else current.name,
        description=patch.description if patch.description is not None else current.description,
        version=version,
    )


def version_of(assistant: AssistantRecord) -> AssistantVersion:
    """The version row that records ``assistant`` as it is now."""
    return AssistantVersion(
        assistant_id=assistant.assistant_id,
        version=assistant.version,
        graph_id=assistant.graph_id,
        config=assistant.config,
        context=assistant.context,
        metadata=assistant.metadata,
        name=assistant.name,
        description=assistant.description,
        created_at=assistant.updated_at,
    )


def restore_version(
    current: AssistantRecord, version: AssistantVersion, *, now: datetime
) -> AssistantRecord:
    """``current`` serving ``version`` again.

    The whole version comes back, graph and context included (the official in-memory
    server restores only config, metadata, name and description, which can leave a
    context that disagrees with the restored ``configurable``).
    """
    return AssistantRecord(
        assistant_id=current.assistant_id,
        graph_id=version.graph_id,
        created_at=current.created_at,
        updated_at=now,
        config=copy.deepcopy(version.config),
        context=copy.deepcopy(version.context),
        metadata=copy.deepcopy(version.metadata),
        name=version.name,
        description=version.description,
        version=version.version,
    )


def metadata_contains(metadata: Mapping[str, Any], subset: Mapping[str, Any]) -> bool:
    """Postgres' ``@>`` on objects: every key of ``subset`` is in ``metadata`` with its
    value, nested objects compared the same way."""
    for key, value in subset.items():
        if key not in metadata:
            return False
        have = metadata[key]
        if isinstance(value, Mapping) and isinstance(have, Mapping):
            if not metadata_contains(have, value):
                return False
        elif have != value:
            return False
    return True
