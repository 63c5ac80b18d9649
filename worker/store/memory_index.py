"""Semantic search over LangGraph's store: ``langgraph.json`` ``store.index``.

``{"dims": N, "embed": "./file.py:func" | "module:func" | "provider:model", "fields": [...]}``
as the official server reads it: a function from a local file (relative to langgraph.json)
works offline; a provider string goes through LangChain's ``init_embeddings``.

LangGraph's own SQLite and Postgres stores index through database extensions (sqlite-vec,
pgvector) that many Python builds and Postgres servers cannot load. ``IndexedStore`` keeps
the same promise without them: it embeds the indexed fields of each item put (the fields of
the config, or the put's ``index`` list; ``index=False`` skips), keeps the vectors beside
the items in ``gf_store_vectors``, and answers a search with ``query`` by cosine similarity
over the items the search's prefix and filter select (each item scored by its best field;
items without vectors follow, unscored), as LangGraph's in-memory store ranks them.
Scoring reads every candidate of the prefix: fine for the thousands of memories of an agent,
not a vector database.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    Item,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from worker.store.memory_vectors import VectorTable

# The most items one semantic search scores.
MAX_CANDIDATES = 10_000


class EmbeddingsLoadError(ValueError):
    """``store.index.embed`` cannot be loaded; the message says what and why."""


def resolve_embeddings(embed: Any, base_dir: Path) -> Embeddings:
    """The ``Embeddings`` that ``embed`` (from langgraph.json) names."""
    if isinstance(embed, Embeddings):
        return embed
    if callable(embed):
        return ensure_embeddings(embed)
    if not isinstance(embed, str) or ":" not in embed:
        raise EmbeddingsLoadError(f"store.index.embed {embed!r}: expected 'path.py:func'")
    target, _, attr = embed.rpartition(":")
    if target.endswith(".py") or "/" in target:
        path = (base_dir / target).resolve()
        if not path.is_file():
            raise EmbeddingsLoadError(f"store.index.embed: file {path} does not exist")
        module_name = f"graphfleet_embeddings.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise EmbeddingsLoadError(f"store.index.embed: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            # "provider:model" as LangChain names embeddings (needs the provider's package).
            return ensure_embeddings(embed)
        except Exception as exc:
            raise EmbeddingsLoadError(f"store.index.embed {embed!r}: {exc}") from exc
    function = getattr(module, attr, None)
    if isinstance(function, Embeddings):
        return function
    if not callable(function):
        raise EmbeddingsLoadError(f"store.index.embed: {target} has no function {attr!r}")
    return ensure_embeddings(function)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _texts(value: Mapping[str, Any], fields: Sequence[str]) -> list[tuple[str, str]]:
    """(field path, text) pairs to embed for ``value``; list items get ``path.i``."""
    out: list[tuple[str, str]] = []
    for field in fields:
        texts = get_text_at_path(value, tokenize_path(field))
        if len(texts) == 1:
            out.append((field, texts[0]))
        else:
            out.extend((f"{field}.{i}", text) for i, text in enumerate(texts))
    return out


class IndexedStore(BaseStore):
    """``inner`` (LangGraph's store, no index) plus vectors in ``vectors``; see the module."""

    def __init__(
        self,
        inner: BaseStore,
        vectors: VectorTable,
        embeddings: Embeddings,
        fields: Sequence[str] | None = None,
    ) -> None:
        self._inner = inner
        self._vectors = vectors
        self._embeddings = embeddings
        self._fields = list(fields or ["$"])
        self._loop = asyncio.get_running_loop()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        # Sync use from a graph's worker thread: run on the store's loop.
        future = asyncio.run_coroutine_threadsafe(self.abatch(ops), self._loop)
        return future.result()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        passed = [op for op in ops if not (isinstance(op, SearchOp) and op.query)]
        results = await self._inner.abatch(passed) if passed else []
        answers: list[Result] = []
        plain = iter(results)
        for op in ops:
            if isinstance(op, SearchOp) and op.query:
                answers.append(await self._search(op))
            else:
                answers.append(next(plain))
            if isinstance(op, PutOp):
                await self._index(op)
        return answers

    async def _index(self, op: PutOp) -> None:
        if op.value is None or op.index is False:
            await self._vectors.delete(op.namespace, op.key)
            return
        pairs = _texts(op.value, self._fields if op.index is None else list(op.index))
        vectors = await self._embeddings.aembed_documents([t for _, t in pairs]) if pairs else []
        await self._vectors.replace(
            op.namespace, op.key, [(f, v) for (f, _), v in zip(pairs, vectors, strict=True)]
        )

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        assert op.query is not None
        (candidates,) = await self._inner.abatch(
            [op._replace(query=None, limit=MAX_CANDIDATES, offset=0)]
        )
        query = await self._embeddings.aembed_query(op.query)
        stored = await self._vectors.load(op.namespace_prefix)
        scored: list[tuple[float, Item]] = []
        unscored: list[Item] = []
        for item in cast(list[Item], candidates or []):
            vectors = stored.get((item.namespace, item.key))
            if vectors:
                scored.append((max(_cosine(query, v) for v in vectors), item))
            else:
                unscored.append(item)
        scored.sort(key=lambda pair: pair[0], reverse=True)
        ranked: list[tuple[float | None, Item]] = [*scored, *((None, i) for i in unscored)]
        return [
            SearchItem(
                namespace=item.namespace,
                key=item.key,
                value=item.value,
                created_at=item.created_at,
                updated_at=item.updated_at,
                score=score,
            )
            for score, item in ranked[op.offset : op.offset + op.limit]
        ]

    async def start_ttl_sweeper(self) -> Any:
        return await self._inner.start_ttl_sweeper()  # type: ignore[attr-defined]

    async def stop_ttl_sweeper(self, wait_s: float | None = None) -> Any:
        return await self._inner.stop_ttl_sweeper(wait_s)  # type: ignore[attr-defined]
