"""Assistants in both stores: create, patch into versions, restore, search, delete; two stores
(two workers) patching the same assistant at once make distinct, consecutive versions."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.store import Store, create_store
from worker.store.assistants import new_assistant
from worker.store.base import AssistantExistsError, AssistantPatch, AssistantQuery

pytestmark = pytest.mark.integration


T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def test_create_get_and_if_exists(stores: tuple[Store, Store]) -> None:
    one, two = stores
    made = new_assistant(
        assistant_id="a1",
        graph_id="g",
        now=T0,
        context={"model": "x"},
        metadata={"team": "red"},
        name="Red",
    )
    assert await one.create_assistant(made) == made
    got = await two.get_assistant("a1")
    assert got == made
    assert got.config == {"configurable": {"model": "x"}}
    with pytest.raises(AssistantExistsError):
        await two.create_assistant(made)
    other = new_assistant(assistant_id="a1", graph_id="g", now=T0, name="Other")
    assert await two.create_assistant(other, if_exists="do_nothing") == made
    assert await one.get_assistant("missing") is None
    (version,) = await one.list_assistant_versions("a1")
    assert (version.version, version.name, version.context) == (1, "Red", {"model": "x"})


async def test_patch_makes_versions_and_set_latest_restores_one(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    await one.create_assistant(
        new_assistant(assistant_id="a", graph_id="g", now=T0, metadata={"k": 1}, name="v1")
    )
    patched = await two.patch_assistant(
        "a", AssistantPatch(context={"model": "big"}, metadata={"j": 2}, name="v2")
    )
    assert patched is not None
    assert patched.version == 2
    assert patched.metadata == {"k": 1, "j": 2}
    assert patched.config == {"configurable": {"model": "big"}}
    # An empty patch still makes a version, and keeps every field.
    third = await one.patch_assistant("a", AssistantPatch())
    assert third is not None
    assert (third.version, third.name, third.context) == (3, "v2", {"model": "big"})
    assert await one.patch_assistant("missing", AssistantPatch(name="x")) is None

    versions = await two.list_assistant_versions("a")
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.version for v in await two.list_assistant_versions("a", limit=1, offset=1)] == [2]
    only_j = await two.list_assistant_versions("a", metadata={"j": 2})
    assert [v.version for v in only_j] == [3, 2]

    restored = await one.set_assistant_version("a", 1)
    assert restored is not None
    assert (restored.version, restored.name, restored.context) == (1, "v1", {})
    assert restored.metadata == {"k": 1}
    assert await two.get_assistant("a") == restored
    assert await one.set_assistant_version("a", 9) is None
    assert await one.set_assistant_version("missing", 1) is None
    # Versions are kept; the next patch follows the highest.
    after = await one.patch_assistant("a", AssistantPatch(name="v4"))
    assert after is not None
    assert after.version == 4


async def test_concurrent_patches_make_consecutive_versions(stores: tuple[Store, Store]) -> None:
    one, two = stores
    await one.create_assistant(new_assistant(assistant_id="a", graph_id="g", now=T0))
    patched = await asyncio.gather(
        *(
            (one if i % 2 else two).patch_assistant("a", AssistantPatch(metadata={str(i): i}))
            for i in range(6)
        )
    )
    assert sorted(p.version for p in patched if p is not None) == [2, 3, 4, 5, 6, 7]
    final = await one.get_assistant("a")
    assert final is not None
    assert final.version == 7
    assert final.metadata == {str(i): i for i in range(6)}


async def test_search_count_and_delete(stores: tuple[Store, Store]) -> None:
    one, two = stores
    specs = [
        ("a1", "chat", "Support Bot", {"team": "red", "tier": {"level": 1}}),
        ("a2", "chat", "sales bot", {"team": "blue"}),
        ("a3", "tools", "Router", {"team": "red"}),
    ]
    for i, (aid, graph, name, metadata) in enumerate(specs):
        await one.create_assistant(
            new_assistant(
                assistant_id=aid,
                graph_id=graph,
                now=T0 + timedelta(seconds=i),
                metadata=metadata,
                name=name,
            )
        )

    async def ids(**query: object) -> list[str]:
        found = await two.search_assistants(AssistantQuery(**query))  # type: ignore[arg-type]
        return [a.assistant_id for a in found]

    assert await ids() == ["a3", "a2", "a1"]  # newest first
    assert await ids(graph_id="chat") == ["a2", "a1"]
    assert await ids(name="BOT", sort_by="name", sort_order="asc") == ["a2", "a1"]
    assert await ids(metadata={"team": "red"}) == ["a3", "a1"]
    assert await ids(metadata={"tier": {"level": 1}}) == ["a1"]
    assert await ids(sort_by="name", sort_order="asc") == ["a3", "a2", "a1"]
    assert await ids(sort_by="created_at", sort_order="asc", limit=1, offset=1) == ["a2"]
    assert await two.count_assistants(AssistantQuery(metadata={"team": "red"})) == 2
    assert await two.count_assistants(AssistantQuery(graph_id="chat", name="sales")) == 1

    assert await one.delete_assistant("a1") is True
    assert await two.get_assistant("a1") is None
    assert await two.list_assistant_versions("a1") == []
    assert await one.delete_assistant("a1") is False
    assert await ids() == ["a3", "a2"]


async def test_sqlite_migration_keeps_default_assistants(tmp_path: Path) -> None:
    """A file from before assistants had versions: its assistants are graphs' defaults."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE gf_assistants (assistant_id TEXT PRIMARY KEY, graph_id TEXT NOT NULL, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO gf_assistants VALUES ('a', 'g', ?, ?)", (T0.isoformat(),) * 2)
    store = create_store(f"sqlite:///{path}")
    await store.open()
    try:
        old = await store.get_assistant("a")
        assert old is not None
        assert (old.name, old.metadata, old.version) == ("g", {"created_by": "system"}, 1)
        assert [v.version for v in await store.list_assistant_versions("a")] == [1]
    finally:
        await store.close()
