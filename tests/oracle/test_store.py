"""Differential tests of the store API: graphfleet and ``langgraph dev`` answer the same calls
with the same status codes and shapes (including semantic search with the ``store.index`` of
``tests/oracle/graphs/langgraph.json``, a local letter-count embedding).

The oracle keeps its state for the whole session: every test works under a namespace of its
own.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.oracle.harness import Target, shape

pytestmark = pytest.mark.integration


async def _call(
    target: Target, method: str, path: str, body: Any = None, **params: str
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"params": params}
    if isinstance(body, str | bytes):
        kwargs["data"] = body
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    async with target.http.request(method, path, **kwargs) as response:
        text = await response.text()
        if "json" in response.content_type and text.strip():
            return response.status, await response.json()
        return response.status, None


async def _both(
    targets: tuple[Target, Target], method: str, path: str, body: Any = None, **params: str
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    ours, theirs = targets
    return (
        await _call(ours, method, path, body, **params),
        await _call(theirs, method, path, body, **params),
    )


async def test_items_put_get_search_namespaces_delete(targets: tuple[Target, Target]) -> None:
    root = f"diff{uuid.uuid4().hex[:8]}"
    for target in targets:
        await target.client.store.put_item([root, "a"], "k1", {"text": "apple pie"})
        await target.client.store.put_item([root, "b"], "k2", {"text": "zzz", "n": 2})
    ours, theirs = await _both(targets, "GET", "/store/items", namespace=f"{root}.a", key="k1")
    assert ours[0] == theirs[0] == 200
    assert shape(ours[1]) == shape(theirs[1])
    assert ours[1]["value"] == theirs[1]["value"]
    assert await _both(targets, "GET", "/store/items", namespace=f"{root}.a", key="nope") == (
        (200, None),
        (200, None),
    )
    # Without an index the order is the store's own: newest first on ours (as LangGraph's
    # SQL stores), insertion order on the in-memory server; the two agree only on a tie of
    # timestamps. So results are compared as sets, and pages by what they add up to.
    for body in (
        {"namespace_prefix": [root]},
        {"namespace_prefix": [root], "filter": {"n": 2}},
        {"namespace_prefix": [root], "query": "apple pies"},
    ):
        ours, theirs = await _both(targets, "POST", "/store/items/search", body)
        assert ours[0] == theirs[0] == 200
        assert _by_key(ours[1]) == _by_key(theirs[1]), body
    pages = []
    for offset in (0, 1, 2):
        body = {"namespace_prefix": [root], "query": "apple", "limit": 1, "offset": offset}
        ours, theirs = await _both(targets, "POST", "/store/items/search", body)
        assert ours[0] == theirs[0] == 200
        assert len(ours[1]["items"]) == len(theirs[1]["items"]) == (1 if offset < 2 else 0)
        pages.append((_keys(ours[1]), _keys(theirs[1])))
    assert sorted(k for ours_page, _ in pages for k in ours_page) == ["k1", "k2"]
    assert sorted(k for _, theirs_page in pages for k in theirs_page) == ["k1", "k2"]
    for body in (
        {"prefix": [root]},
        {"prefix": [root], "max_depth": 1},
        {"prefix": [root], "suffix": ["b"]},
        {"prefix": [root], "limit": 1, "offset": 1},
    ):
        ours, theirs = await _both(targets, "POST", "/store/namespaces", body)
        assert (ours[0], ours[1]) == (theirs[0], theirs[1]), body
    ours, theirs = await _both(
        targets, "DELETE", "/store/items", {"namespace": [root, "a"], "key": "k1"}
    )
    assert ours == theirs == (204, None)
    assert await _both(targets, "GET", "/store/items", namespace=f"{root}.a", key="k1") == (
        (200, None),
        (200, None),
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}, {}),
        ("PUT", "/store/items", {"namespace": ["langgraph"], "key": "k", "value": {}}, {}),
        ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}, {}),
        ("PUT", "/store/items", {"namespace": ["a", ""], "key": "k", "value": {}}, {}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}, {}),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1]}, {}),
        ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}, {}),
        ("PUT", "/store/items", "not json", {}),
        ("GET", "/store/items", None, {"namespace": "a"}),
        ("GET", "/store/items", None, {"key": "k"}),
        ("GET", "/store/items", None, {"namespace": "a..b", "key": "k"}),
        ("DELETE", "/store/items", {"namespace": ["a"]}, {}),
        ("DELETE", "/store/items", {"namespace": ["a.b"], "key": "k"}, {}),
        ("POST", "/store/items/search", {"namespace_prefix": ["a."]}, {}),
        ("POST", "/store/items/search", {"limit": "many"}, {}),
        ("POST", "/store/namespaces", {"prefix": ["x", ""]}, {}),
        ("POST", "/store/namespaces", {"suffix": ["x.y"]}, {}),
    ],
)
async def test_bad_input_gets_the_same_status(
    targets: tuple[Target, Target],
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
) -> None:
    ours, theirs = await _both(targets, method, path, body, **params)
    assert ours[0] == theirs[0]
    assert ours[0] in (400, 422)


async def test_a_search_without_a_body_lists_from_the_root(targets: tuple[Target, Target]) -> None:
    # Deliberate difference: the official server answers 500 to a search with no
    # namespace_prefix (it calls tuple(None)); graphfleet searches from the root.
    ours, theirs = await _both(targets, "POST", "/store/items/search", {})
    assert (ours[0], theirs[0]) == (200, 500)
    assert set(ours[1]) == {"items"}


async def test_a_graph_reads_and_writes_the_servers_store(targets: tuple[Target, Target]) -> None:
    results = []
    for target in targets:
        thread = await target.client.threads.create()
        await target.client.runs.wait(thread["thread_id"], "memory", input={"note": "first"})
        result = await target.client.runs.wait(
            thread["thread_id"], "memory", input={"note": "second"}
        )
        item = await target.client.store.get_item(["notes"], "second")
        results.append((shape(result), item["value"] if item else None))
    assert results[0] == results[1]
    assert results[0][1] == {"text": "second"}


def _keys(body: dict[str, Any]) -> list[str]:
    return [item["key"] for item in body["items"]]


def _by_key(body: dict[str, Any]) -> dict[str, Any]:
    """A search's items by key, each as its shape (timestamps and all)."""
    return {item["key"]: shape(item) for item in body["items"]}
