"""graphfleet against the official LangGraph Server: thread ``ttl`` on create and patch (the
shapes the SDK sends, and the 422s of malformed ones), and ``GET /threads/{id}/storage``, on
both stores.

The in-memory oracle accepts a TTL but never sweeps and never shows one; what graphfleet does
with a TTL (the sweep, ``?include=ttl``) follows the official server on Postgres and is
tested in ``tests/integration/durable/test_thread_ttl_api.py``. Where the two differ on
purpose, the test says so.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.oracle.harness import Target, shape
from tests.oracle.test_differential_threads import ZERO, request

pytestmark = pytest.mark.integration

ACCEPTED_TTLS: list[Any] = [
    {"ttl": 5, "strategy": "delete"},  # what the SDK sends for ttl=5
    {"ttl": 1.5, "strategy": "keep_latest"},
    {"ttl": 0},
    {"ttl": -1},
    {"strategy": "keep_latest"},
    {},
]
MALFORMED_TTLS: list[Any] = [
    "5",
    5,
    None,
    [],
    {"strategy": "archive"},
    {"strategy": None},
    {"ttl": "5"},
    {"ttl": True},
    {"ttl": None},
    {"ttl": [5]},
]


def _thread_shape(thread: Any) -> Any:
    """A thread's shape but for ``values`` and ``interrupts``: a thread no run has touched
    has ``values: null`` and no ``interrupts`` on the oracle, ``{}`` and ``{}`` here (not a
    matter of TTLs)."""
    return shape({k: v for k, v in thread.items() if k not in ("values", "interrupts")})


async def test_the_sdks_ttl_forms_are_accepted(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk, answers = target.client, []
        created = await sdk.threads.create(ttl=5)
        answers.append(_thread_shape(created))
        keep = await sdk.threads.create(ttl={"ttl": 2, "strategy": "keep_latest"})
        answers.append(_thread_shape(keep))
        patched = await sdk.threads.update(created["thread_id"], metadata={"a": 1}, ttl=10)
        answers.append(_thread_shape(patched))
        for ttl in ACCEPTED_TTLS:
            status, body = await request(target, "POST", "/threads", {"ttl": ttl})
            answers.append((status, _thread_shape(body)))
            path = f"/threads/{created['thread_id']}"
            status, body = await request(target, "PATCH", path, {"ttl": ttl})
            answers.append((status, _thread_shape(body)))
        answers.append(_thread_shape(await sdk.threads.get(created["thread_id"])))
        seen.append(answers)
    assert seen[0] == seen[1]
    assert all(status == 200 for status, _ in seen[0][3:-1])
    assert seen[0][-1]["metadata"] == {"a": "int"}  # the patch's metadata, ttl beside it


@pytest.mark.parametrize("ttl", MALFORMED_TTLS, ids=repr)
async def test_a_malformed_ttl_is_422_and_writes_nothing(
    pair: tuple[Target, Target], ttl: Any
) -> None:
    seen = []
    for target in pair:
        thread_id = str(uuid.uuid4())
        created = await request(target, "POST", "/threads", {"thread_id": thread_id, "ttl": ttl})
        after = await request(target, "GET", f"/threads/{thread_id}")
        existing = (await target.client.threads.create(metadata={"k": 1}))["thread_id"]
        body = {"metadata": {"k": 2}, "ttl": ttl}
        patched = await request(target, "PATCH", f"/threads/{existing}", body)
        unchanged = await target.client.threads.get(existing)
        seen.append(
            (created[0], "detail" in created[1], after[0], patched[0], unchanged["metadata"])
        )
    assert seen[0] == seen[1] == (422, True, 404, 422, {"k": 1})


async def test_include_ttl_shows_it_here_only(pair: tuple[Target, Target]) -> None:
    ours, theirs = pair
    # Differs on purpose: the in-memory oracle ignores ?include=ttl; the official server on
    # Postgres (and graphfleet) adds the thread's TTL.
    for target in pair:
        thread_id = (await target.client.threads.create(ttl=30))["thread_id"]
        shown = await target.client.threads.get(thread_id, include=["ttl"])
        if target is theirs:
            assert "ttl" not in shown
        else:
            assert shape(shown["ttl"]) == {
                "strategy": "str",
                "ttl_minutes": "float",
                "expires_at": "<timestamp>",
            }
            assert ours is target


async def test_an_unknown_ttl_key_is_refused_here(pair: tuple[Target, Target]) -> None:
    ours, theirs = pair
    # Differs on purpose: the official schema lets unknown keys through, ignored; graphfleet
    # refuses a field it would not honour (422 naming it), as it does everywhere.
    body = {"ttl": {"ttl": 5, "sweep_every": 1}}
    assert (await request(theirs, "POST", "/threads", body))[0] == 200
    status, answer = await request(ours, "POST", "/threads", body)
    assert status == 422
    assert "ttl.sweep_every" in answer["detail"]


async def test_storage_has_the_official_shape(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        fresh = (await sdk.threads.create())["thread_id"]
        empty = await request(target, "GET", f"/threads/{fresh}/storage")
        thread_id = (await sdk.threads.create())["thread_id"]
        await sdk.runs.wait(
            thread_id, "chat", input={"messages": [{"role": "user", "content": "hi"}]}
        )
        status, report = await request(target, "GET", f"/threads/{thread_id}/storage")
        channels = report["channel_values"]
        parts = (report["checkpoints"], channels, report["pending_writes"])
        assert report["total_bytes"] == sum(part["bytes"] for part in parts)
        assert channels["count"] == sum(c["versions"] for c in channels["by_channel"].values())
        seen.append(
            {
                "empty": (empty[0], empty[1]["total_bytes"], empty[1]["channel_values"]),
                "status": status,
                "thread_id": report["thread_id"] == thread_id,
                # Which channels and how many bytes depend on how each checkpointer lays the
                # values out; the sections and their types do not.
                "top": shape({k: v for k, v in report.items() if k != "channel_values"}),
                "channels": sorted(k for k in channels if k != "by_channel"),
                "messages": shape(channels["by_channel"]["messages"]),
                "missing": (await request(target, "GET", f"/threads/{ZERO}/storage"))[0],
                "malformed": (await request(target, "GET", "/threads/nope/storage"))[0],
            }
        )
    assert seen[0] == seen[1]
    assert seen[0]["empty"] == (200, 0, {"count": 0, "bytes": 0, "by_channel": {}})
    assert (seen[0]["missing"], seen[0]["malformed"]) == (404, 422)
