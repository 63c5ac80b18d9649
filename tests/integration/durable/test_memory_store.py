"""Both stores: LangGraph's store in the worker's database, shared by every worker of it,
with langgraph.json's ``store.index`` (a local embedding function) and ``store.ttl``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.store.base import BaseStore

from tests.support import eventually
from worker.store import Store, create_store
from worker.store.memory import MemoryConfig, MemoryConfigError, open_memory, read_memory_config

pytestmark = pytest.mark.integration
MEMORY_GRAPHS = Path(__file__).resolve().parents[2] / "graphs" / "memory" / "langgraph.json"


@contextlib.asynccontextmanager
async def _memory(url: str, config: MemoryConfig) -> AsyncIterator[BaseStore]:
    store: Store = create_store(url)
    await store.open()
    try:
        async with open_memory(store, config) as memory:
            yield memory
    finally:
        await store.close()


async def test_two_workers_share_items_and_namespaces(store_url: str) -> None:
    async with (
        _memory(store_url, MemoryConfig()) as a,
        _memory(store_url, MemoryConfig()) as b,
    ):
        await a.aput(("users", "u1", "prefs"), "theme", {"color": "blue"})
        await a.aput(("users", "u2"), "name", {"first": "Ada", "n": 2})
        item = await b.aget(("users", "u1", "prefs"), "theme")
        assert item is not None
        assert item.value == {"color": "blue"}
        assert item.dict()["namespace"] == ["users", "u1", "prefs"]
        found = await b.asearch(("users",), filter={"n": 2})
        assert [i.key for i in found] == ["name"]
        assert await b.alist_namespaces(prefix=("users",), max_depth=2) == [
            ("users", "u1"),
            ("users", "u2"),
        ]
        await b.adelete(("users", "u2"), "name")
        assert await a.aget(("users", "u2"), "name") is None


async def test_semantic_search_ranks_by_the_configured_embedding(store_url: str) -> None:
    config = read_memory_config(MEMORY_GRAPHS)
    assert config.index is not None
    assert config.ttl is not None
    async with _memory(store_url, config) as a, _memory(store_url, config) as b:
        namespace = ("memories", "u1")
        for text in ("apple pie", "zzz zzz", "apple tart"):
            await a.aput(namespace, text, {"text": text})
        await a.aput(namespace, "unindexed", {"text": "apple apple"}, index=False)
        # Another worker's search sees the vectors the first one wrote.
        found = await b.asearch(("memories",), query="apple pies", limit=3)
        assert [i.key for i in found] == ["apple pie", "apple tart", "zzz zzz"]
        scores = [i.score for i in found]
        assert scores[0] is not None
        assert scores[1] is not None
        assert scores[0] > scores[1]
        # Items without vectors come last, unscored; offset pages through the ranking.
        rest = await b.asearch(("memories",), query="apple pies", limit=5, offset=2)
        assert [(i.key, i.score is None) for i in rest] == [("zzz zzz", False), ("unindexed", True)]
        # A rewrite re-embeds; a delete forgets the vectors.
        await a.aput(namespace, "zzz zzz", {"text": "apple pie again"})
        await a.adelete(namespace, "apple tart")
        found = await b.asearch(namespace, query="apple pie", limit=2)
        assert [i.key for i in found] == ["apple pie", "zzz zzz"]
        # Without a query, search is the plain listing.
        assert len(await b.asearch(namespace, limit=10)) == 3


def test_a_malformed_store_section_fails_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text('{"graphs": {}, "store": {"index": {"embed": "./e.py:f"}}}')
    with pytest.raises(MemoryConfigError, match=r"store\.index"):
        read_memory_config(config)
    config.write_text('{"graphs": {}}')
    assert read_memory_config(config) == MemoryConfig(base_dir=tmp_path)


async def test_store_ttl_gives_items_an_expiry_the_sweeper_honours(
    store_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "langgraph.json"
    # 0.01 minutes: items expire after 0.6 s.
    config.write_text('{"graphs": {}, "store": {"ttl": {"default_ttl": 0.01}}}')
    async with _memory(store_url, read_memory_config(config)) as memory:
        await memory.aput(("tmp",), "gone", {"v": 1})
        await memory.aput(("tmp",), "kept", {"v": 2}, ttl=None)
        sweep = memory.sweep_ttl  # type: ignore[attr-defined]

        async def swept() -> bool:
            await sweep()
            return await memory.aget(("tmp",), "gone") is None

        await eventually(swept, timeout_s=10, interval_s=0.2)
        assert await memory.aget(("tmp",), "kept") is not None
