"""The store API through the official SDK and raw HTTP, and graphs that use the store.

The worker serves ``tests/graphs/memory``: a graph that writes with ``get_store()`` and
reads through an injected ``store``, and a ``store.index`` with a local embedding function.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.integration.worker.conftest import Worker, WorkerFactory

pytestmark = pytest.mark.integration
MEMORY_GRAPHS = Path(__file__).resolve().parents[2] / "graphs" / "memory" / "langgraph.json"


@pytest.fixture
async def worker(make_worker: WorkerFactory) -> Worker:
    return await make_worker(graphs=MEMORY_GRAPHS)


@pytest.fixture
async def client(worker: Worker) -> Any:
    sdk = worker.client()
    yield sdk
    await sdk.aclose()


async def _call(
    worker: Worker, method: str, path: str, body: Any = None, **params: str
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, worker.url + path, json=body, params=params) as response,
    ):
        text = await response.text()
        return response.status, (await response.json() if text.strip() else None)


async def test_items_round_trip_through_the_sdk(client: LangGraphClient) -> None:
    await client.store.put_item(["users", "u1"], "prefs", {"theme": "dark"})
    await client.store.put_item(["users", "u2"], "prefs", {"theme": "light"})
    item = await client.store.get_item(["users", "u1"], "prefs")
    assert item is not None
    assert (item["namespace"], item["key"], item["value"]) == (
        ["users", "u1"],
        "prefs",
        {"theme": "dark"},
    )
    assert set(item) >= {"created_at", "updated_at"}
    found = await client.store.search_items(["users"], filter={"theme": "light"})
    assert [i["namespace"] for i in found["items"]] == [["users", "u2"]]
    listed = await client.store.list_namespaces(prefix=["users"])
    assert listed["namespaces"] == [["users", "u1"], ["users", "u2"]]
    await client.store.delete_item(["users", "u1"], "prefs")
    assert await client.store.get_item(["users", "u1"], "prefs") is None


async def test_item_timestamps_carry_their_utc_offset(client: LangGraphClient) -> None:
    # Without an offset, JavaScript's Date would read them as local time.
    before = datetime.now(UTC).replace(microsecond=0)
    await client.store.put_item(["clock"], "k", {"text": "now"})
    item = await client.store.get_item(["clock"], "k")
    found = await client.store.search_items(["clock"], query="now")
    assert item is not None
    stamps = [item["created_at"], item["updated_at"]]
    stamps += [i[key] for i in found["items"] for key in ("created_at", "updated_at")]
    for stamp in stamps:
        at = datetime.fromisoformat(stamp)
        assert at.utcoffset() == timedelta(0), stamp
        assert before <= at <= datetime.now(UTC), stamp


async def test_semantic_search_with_the_configured_index(client: LangGraphClient) -> None:
    for text in ("apple pie", "zzz", "apple tart"):
        await client.store.put_item(["notes"], text, {"text": text})
    found = await client.store.search_items(["notes"], query="apple pies", limit=2)
    assert [i["key"] for i in found["items"]] == ["apple pie", "apple tart"]
    assert all(isinstance(i["score"], float) for i in found["items"])


async def test_a_graph_remembers_through_get_store_and_recalls_through_store(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "remember", input={"user": "ada", "text": "tea"})
    second = await client.runs.wait(
        None, "remember", input={"user": "ada", "text": "tart", "query": "tea"}
    )
    assert isinstance(second, dict)
    assert second["recalled"] == ["tea", "tart"]
    # What the graph stored, a client reads.
    item = await client.store.get_item(["memories", "ada"], "tea")
    assert item is not None
    assert item["value"] == {"text": "tea"}


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status"),
    [
        ("PUT", "/store/items", {"namespace": ["a.b"], "key": "k", "value": {}}, {}, 422),
        ("PUT", "/store/items", {"namespace": ["a", ""], "key": "k", "value": {}}, {}, 422),
        ("PUT", "/store/items", {"namespace": [], "key": "k", "value": {}}, {}, 400),
        ("PUT", "/store/items", {"namespace": ["langgraph"], "key": "k", "value": {}}, {}, 400),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k"}, {}, 422),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1]}, {}, 422),
        ("PUT", "/store/items", {"namespace": "a", "key": "k", "value": {}}, {}, 422),
        ("PUT", "/store/items", {"namespace": ["a"], "key": 1, "value": {}}, {}, 422),
        ("GET", "/store/items", None, {"namespace": "a"}, 400),
        ("GET", "/store/items", None, {"namespace": "", "key": "k"}, 422),
        ("GET", "/store/items", None, {"namespace": "a..b", "key": "k"}, 422),
        ("DELETE", "/store/items", {"namespace": ["a"]}, {}, 422),
        ("POST", "/store/items/search", {"namespace_prefix": ["a."]}, {}, 422),
        ("POST", "/store/items/search", {"limit": "many"}, {}, 422),
        ("POST", "/store/namespaces", {"prefix": ["x", ""]}, {}, 422),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(
    worker: Worker,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
    status: int,
) -> None:
    got, _ = await _call(worker, method, path, body, **params)
    assert got == status
    _, found = await _call(worker, "POST", "/store/items/search", {"limit": 100})
    assert found == {"items": []}


async def test_an_unknown_item_is_null_and_info_reports_the_store(worker: Worker) -> None:
    assert await _call(worker, "GET", "/store/items", namespace="a", key="nope") == (200, None)
    status, info = await _call(worker, "GET", "/info")
    assert status == 200
    assert info["flags"]["store"] is True
    assert info["flags"]["crons"] is True


@pytest.mark.parametrize(
    "namespace",
    [".", "a.", ".a", "a..b", "a\x00b", "é.ü", "a" * 5000, "%2E", "a.b.c.d.e.f.g.h", " "],
)
async def test_any_namespace_in_a_query_string_gets_an_answer_not_a_crash(
    worker: Worker, namespace: str
) -> None:
    status, body = await _call(worker, "GET", "/store/items", namespace=namespace, key="k")
    assert status in (200, 400, 422)
    if status == 200:
        assert body is None
    status, _ = await _call(
        worker, "PUT", "/store/items", {"namespace": namespace.split("."), "key": "k", "value": {}}
    )
    assert status in (204, 400, 422)
