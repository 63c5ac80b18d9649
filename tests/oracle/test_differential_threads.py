"""graphfleet against the official LangGraph Server: threads (patch, copy, search, count,
prune, delete), history and state at a checkpoint, and runs in bulk, on both stores.

Every test runs twice (the ``pair`` fixture of ``conftest.py``): graphfleet on SQLite and on
Postgres (a schema of the test's own), each beside the same oracle. The oracle lives for the
whole session, so each test tags its threads with metadata of its own and filters by it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.oracle.harness import SLOW_S, Target, normalised, shape
from tests.support import eventually

pytestmark = pytest.mark.integration

ZERO = "00000000-0000-0000-0000-000000000000"


async def request(target: Target, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw request: the status and the JSON body (``None`` when the body is empty)."""
    async with target.http.request(method, path, json=body) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def tag() -> dict[str, str]:
    """Metadata that only this test's threads carry (the oracle is shared by the session)."""
    return {"test_tag": uuid.uuid4().hex}


async def interrupted_thread(target: Target, metadata: dict[str, Any] | None = None) -> str:
    """A thread of the ``interrupting`` graph waiting at its interrupt()."""
    thread_id = (await target.client.threads.create(metadata=metadata))["thread_id"]
    await target.client.runs.wait(thread_id, "interrupting", input={"question": "ok?"})
    return str(thread_id)


async def test_patch_merges_metadata(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        thread = await target.client.threads.create(metadata={"a": 1, "b": 1})
        patched = await target.client.threads.update(thread["thread_id"], metadata={"b": 2})
        got = await target.client.threads.get(thread["thread_id"])
        assert got["metadata"] == patched["metadata"]
        missing = await request(target, "PATCH", f"/threads/{ZERO}", {"metadata": {}})
        seen.append((patched["metadata"], patched["status"], missing[0]))
    assert seen[0] == seen[1] == ({"a": 1, "b": 2}, "idle", 404)


async def test_delete_cancels_an_active_run_first(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(thread_id, "slow", input={"delay_s": SLOW_S})

        async def running(sdk: Any = sdk, thread_id: str = thread_id, run: Any = run) -> bool:
            return (await sdk.runs.get(thread_id, run["run_id"]))["status"] == "running"

        await eventually(running, timeout_s=30)
        deleted = await request(target, "DELETE", f"/threads/{thread_id}")
        after = await request(target, "GET", f"/threads/{thread_id}")
        run_after = await request(target, "GET", f"/threads/{thread_id}/runs/{run['run_id']}")
        seen.append((deleted[0], after[0], run_after[0]))
    assert seen[0] == seen[1] == (204, 404, 404)


async def test_copy_has_the_state_and_history_and_resumes_alone(
    pair: tuple[Target, Target],
) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        source = await interrupted_thread(target, {"kind": "copied"})
        copied = await request(target, "POST", f"/threads/{source}/copy")
        assert copied[0] == 200
        copy_id = copied[1]["thread_id"]
        assert copy_id != source
        state = await sdk.threads.get_state(copy_id)
        history = await sdk.threads.get_history(copy_id, limit=10)
        resumed = await sdk.runs.wait(copy_id, "interrupting", command={"resume": "yes"})
        source_state = await sdk.threads.get_state(source)
        seen.append(
            {
                "metadata": copied[1]["metadata"],
                "values": state["values"],
                "next": state["next"],
                "history": [(h["next"], normalised(h["values"])) for h in history],
                "resumed": resumed,
                "source_next": source_state["next"],
                "missing": (await request(target, "POST", f"/threads/{ZERO}/copy"))[0],
            }
        )
    # A missing source is a 409 there (not 404), and here too.
    assert seen[0] == seen[1]
    assert seen[0]["next"] == ["ask"]
    assert seen[0]["resumed"] == {"question": "ok?", "answer": "yes"}


async def test_search_filters_sort_select_and_paging(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk, mine = target.client, tag()
        waiting = await interrupted_thread(target, {**mine, "n": 1})
        idle = (await sdk.threads.create(metadata={**mine, "n": 2}))["thread_id"]
        await sdk.runs.wait(idle, "slow", input={"delay_s": 0})
        # Every thread has run: the oracle fails (500) to match values against a thread
        # that has none yet.
        other = (await sdk.threads.create(metadata={**mine, "n": 3}))["thread_id"]
        await sdk.runs.wait(other, "slow", input={"delay_s": 0.01})
        names = {waiting: "waiting", idle: "idle", other: "other"}

        async def found(**filters: Any) -> list[str]:
            filters = {"metadata": mine, "limit": 10, **filters}  # noqa: B023
            threads = await sdk.threads.search(**filters)  # noqa: B023
            return [names[t["thread_id"]] for t in threads]  # noqa: B023

        seen.append(
            {
                "by_created": await found(sort_by="created_at", sort_order="asc"),
                "by_status": await found(status="interrupted"),
                "by_values": await found(values={"question": "ok?"}),
                "by_done": await found(values={"done": True}),
                "by_ids": sorted(await found(ids=[idle, other])),
                "by_metadata": await found(metadata={**mine, "n": 2}),
                "paged": await found(sort_by="created_at", sort_order="desc", limit=1, offset=1),
                "selected": [
                    sorted(t)
                    for t in await sdk.threads.search(
                        metadata=mine, select=["thread_id", "status"], limit=1
                    )
                ],
            }
        )
    assert seen[0] == seen[1]
    assert seen[0]["by_created"] == ["waiting", "idle", "other"]
    assert seen[0]["by_values"] == ["waiting"]
    assert seen[0]["selected"] == [["status", "thread_id"]]


async def test_count(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk, mine = target.client, tag()
        await interrupted_thread(target, mine)
        # It runs: the oracle fails (500) to match values against a thread that has none.
        other = (await sdk.threads.create(metadata=mine))["thread_id"]
        await sdk.runs.wait(other, "slow", input={"delay_s": 0})
        seen.append(
            (
                await sdk.threads.count(metadata=mine),
                await sdk.threads.count(metadata=mine, status="interrupted"),
                await sdk.threads.count(metadata=mine, values={"question": "ok?"}),
                await sdk.threads.count(metadata={**mine, "nope": 1}),
            )
        )
    assert seen[0] == seen[1] == (2, 1, 1, 0)


async def test_prune_delete(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        first = await interrupted_thread(target)
        second = (await sdk.threads.create())["thread_id"]
        pruned = await sdk.threads.prune([first, second, ZERO])
        after = [(await request(target, "GET", f"/threads/{t}"))[0] for t in (first, second)]
        empty = await sdk.threads.prune([])
        bad = await request(target, "POST", "/threads/prune", {"thread_ids": [], "strategy": "x"})
        seen.append((pruned, after, empty, bad[0]))
    assert seen[0] == seen[1] == ({"pruned_count": 2}, [404, 404], {"pruned_count": 0}, 422)


async def test_prune_keep_latest(pair: tuple[Target, Target]) -> None:
    ours, theirs = pair
    # Differs on purpose: the in-memory oracle refuses keep_latest (422); the official
    # server on Postgres keeps each thread's latest checkpoint, as graphfleet does.
    thread_id = await interrupted_thread(theirs)
    body = {"thread_ids": [thread_id], "strategy": "keep_latest"}
    assert (await request(theirs, "POST", "/threads/prune", body))[0] == 422
    thread_id = await interrupted_thread(ours)
    before = await ours.client.threads.get_state(thread_id)
    assert len(await ours.client.threads.get_history(thread_id, limit=10)) > 1
    body = {"thread_ids": [thread_id], "strategy": "keep_latest"}
    assert await request(ours, "POST", "/threads/prune", body) == (200, {"pruned_count": 1})
    history = await ours.client.threads.get_history(thread_id, limit=10)
    after = await ours.client.threads.get_state(thread_id)
    assert len(history) == 1
    assert (after["values"], after["next"]) == (before["values"], before["next"])
    resumed = await ours.client.runs.wait(thread_id, "interrupting", command={"resume": "y"})
    assert resumed == {"question": "ok?", "answer": "y"}


def _steps(history: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a history says, ids and timestamps aside."""
    return [
        (
            h["next"],
            normalised(h["values"]),
            h["metadata"].get("source"),
            h["metadata"].get("step"),
            [t["name"] for t in h["tasks"]],
            [i["value"] for i in h["interrupts"]],
        )
        for h in history
    ]


async def test_history_after_an_interrupt_and_a_resume(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id = await interrupted_thread(target)
        await sdk.runs.wait(thread_id, "interrupting", command={"resume": "yes"})
        history = await sdk.threads.get_history(thread_id, limit=10)
        base = f"/threads/{thread_id}/history"
        get_default = (await request(target, "GET", base))[1]
        get_two = (await request(target, "GET", f"{base}?limit=2"))[1]
        by_source = await sdk.threads.get_history(thread_id, limit=10, metadata={"source": "input"})
        seen.append(
            {
                "history": _steps(history),
                "shape": shape(history[0]["checkpoint"]),
                "get_default": len(get_default),
                "get_two": _steps(get_two),
                "by_source": _steps(by_source),
                "bad_limit": (await request(target, "GET", f"{base}?limit=x"))[0],
                "missing": (await request(target, "POST", f"/threads/{ZERO}/history", {}))[0],
            }
        )
    # A checkpoint in the oracle's history has no checkpoint_map; graphfleet's has it.
    for one in seen:
        one["shape"].pop("checkpoint_map", None)
    assert seen[0] == seen[1]
    assert seen[0]["history"][0][1] == {"question": "ok?", "answer": "yes"}
    assert seen[0]["get_default"] == 1
    assert ["ask"] in [step[0] for step in seen[0]["history"]]


async def test_history_before_a_checkpoint(pair: tuple[Target, Target]) -> None:
    ours, theirs = pair
    # Differs on purpose: the oracle refuses `before` as the checkpoint id the SDK sends (422:
    # not an object) and fails (500) on a checkpoint object; graphfleet takes either.
    thread_id = await interrupted_thread(theirs)
    history = await theirs.client.threads.get_history(thread_id, limit=10)
    newest = history[0]["checkpoint"]["checkpoint_id"]
    body = {"limit": 10, "before": newest}
    assert (await request(theirs, "POST", f"/threads/{thread_id}/history", body))[0] == 422
    thread_id = await interrupted_thread(ours)
    history = await ours.client.threads.get_history(thread_id, limit=10)
    ids = [h["checkpoint"]["checkpoint_id"] for h in history]
    by_id = await ours.client.threads.get_history(thread_id, limit=10, before=ids[0])
    by_checkpoint = await ours.client.threads.get_history(
        thread_id, limit=1, before={"checkpoint_id": ids[1]}
    )
    query = await request(ours, "GET", f"/threads/{thread_id}/history?limit=10&before={ids[0]}")
    assert [h["checkpoint"]["checkpoint_id"] for h in by_id] == ids[1:]
    assert [h["checkpoint"]["checkpoint_id"] for h in by_checkpoint] == ids[2:3]
    assert [h["checkpoint"]["checkpoint_id"] for h in query[1]] == ids[1:]


async def test_state_at_a_checkpoint(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id = await interrupted_thread(target)
        await sdk.runs.wait(thread_id, "interrupting", command={"resume": "yes"})
        history = await sdk.threads.get_history(thread_id, limit=10)
        paused = next(h for h in history if h["next"] == ["ask"])
        checkpoint = paused["checkpoint"]
        got = await sdk.threads.get_state(thread_id, checkpoint_id=checkpoint["checkpoint_id"])
        posted = await sdk.threads.get_state(
            thread_id, checkpoint={"checkpoint_id": checkpoint["checkpoint_id"]}
        )
        missing = await request(
            target, "POST", f"/threads/{ZERO}/state/checkpoint", {"checkpoint": {}}
        )
        no_body = await request(target, "POST", f"/threads/{thread_id}/state/checkpoint", {})
        seen.append(
            (
                _steps([got]),
                _steps([posted]),
                got["checkpoint"]["checkpoint_id"] == checkpoint["checkpoint_id"],
                missing[0],
                no_body[0],
            )
        )
    assert seen[0] == seen[1]
    assert seen[0][0][0][0] == ["ask"]


async def test_supersteps_at_creation(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread = await sdk.threads.create(
            graph_id="interrupting",
            supersteps=[
                {"updates": [{"values": {"question": "q"}, "as_node": "__start__"}]},
                {"updates": [{"values": {"answer": "a"}, "as_node": "ask"}]},
            ],
        )
        state = await sdk.threads.get_state(thread["thread_id"])
        history = await sdk.threads.get_history(thread["thread_id"], limit=10)
        seen.append((state["values"], state["next"], len(history), thread["metadata"]))
    assert seen[0] == seen[1]
    assert seen[0][0] == {"question": "q", "answer": "a"}


RUN_KEYS = ("run_id", "thread_id", "assistant_id", "status", "multitask_strategy")


async def test_runs_batch(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        payloads: Any = [
            {"assistant_id": "slow", "input": {"delay_s": 0}},
            {"assistant_id": "interrupting", "input": {"question": "b"}},
        ]
        runs = await target.client.runs.create_batch(payloads)
        bad = await request(target, "POST", "/runs/batch", [{"assistant_id": 5}])
        seen.append(([shape({k: r[k] for k in RUN_KEYS}) for r in runs], bad[0]))
    assert seen[0] == seen[1]
    assert [r["status"] for r in seen[0][0]] == ["pending", "pending"]


async def _slow_runs(target: Target, count: int) -> tuple[str, list[str]]:
    """A thread with one running slow run and ``count - 1`` queued behind it."""
    sdk = target.client
    thread_id = (await sdk.threads.create())["thread_id"]
    run_ids = [
        (await sdk.runs.create(thread_id, "slow", input={"delay_s": SLOW_S}))["run_id"]
        for _ in range(count)
    ]

    async def running() -> bool:
        return (await sdk.runs.get(thread_id, run_ids[0]))["status"] == "running"

    await eventually(running, timeout_s=30)
    return thread_id, run_ids


async def test_cancel_many_by_thread_and_run_ids(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id, run_ids = await _slow_runs(target, 2)
        body = {"thread_id": thread_id, "run_ids": run_ids}
        cancelled = await request(target, "POST", "/runs/cancel", body)
        # Right after the answer, both read interrupted, the running one and the queued one.
        at_once = [(await sdk.runs.get(thread_id, r))["status"] for r in run_ids]
        for run_id in run_ids:
            await sdk.runs.join(thread_id, run_id)
        unknown = await request(
            target, "POST", "/runs/cancel", {"thread_id": thread_id, "run_ids": [ZERO]}
        )
        both = await request(target, "POST", "/runs/cancel", {"status": "all", **body})
        seen.append((cancelled[0], at_once, unknown[0], both[0]))
    assert seen[0] == seen[1] == (204, ["interrupted", "interrupted"], 404, 422)


async def test_cancel_reads_interrupted_at_once(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id, (run_id,) = await _slow_runs(target, 1)
        path = f"/threads/{thread_id}/runs/{run_id}"
        cancelled = await request(target, "POST", f"{path}/cancel")
        at_once = (await sdk.runs.get(thread_id, run_id))["status"]
        await sdk.runs.join(thread_id, run_id)
        again = await request(target, "POST", f"{path}/cancel")
        seen.append((cancelled, at_once, again[0]))
    assert seen[0] == seen[1]
    assert seen[0][:2] == ((202, None), "interrupted")


async def test_run_options(pair: tuple[Target, Target]) -> None:
    """``if_not_exists``, ``interrupt_before``, a resume from a past checkpoint,
    ``durability`` and LangSmith fields, as the SDK sends them."""
    seen = []
    for target in pair:
        sdk = target.client
        new_id = str(uuid.uuid4())
        created = await sdk.runs.wait(
            new_id, "slow", input={"delay_s": 0}, if_not_exists="create", durability="exit"
        )
        paused = await sdk.runs.wait(
            None, "interrupting", input={"question": "x"}, interrupt_before=["ask"]
        )
        thread_id = await interrupted_thread(target)
        await sdk.runs.wait(thread_id, "interrupting", command={"resume": "first"})
        history = await sdk.threads.get_history(thread_id, limit=10)
        at_ask = next(h for h in history if h["next"] == ["ask"])
        again = await sdk.runs.wait(
            thread_id,
            "interrupting",
            command={"resume": "second"},
            checkpoint_id=at_ask["checkpoint"]["checkpoint_id"],
        )
        body = {"assistant_id": "slow", "input": {}, "feedback_keys": ["score"]}
        # Accepted by both; the oracle's run then fails reaching LangSmith (no network here).
        langsmith = (await request(target, "POST", "/runs/wait", body))[0]
        status = (await sdk.threads.get(new_id))["status"]
        seen.append((created, paused, again, status, langsmith))
    # From the checkpoint where it waited, the run finds the first resume's answer among
    # that checkpoint's pending writes, and both servers finish with it.
    assert seen[0] == seen[1]
    assert seen[0][2] == {"question": "ok?", "answer": "first"}


async def _read_thread_stream(target: Target, thread_id: str, runs: int) -> list[Any]:
    """The thread stream's parts until ``runs`` runs are done."""
    parts, done = [], 0
    async for part in await target.client.threads.join_stream(thread_id):
        parts.append({"event": part.event, "data": part.data})
        if part.event == "metadata" and part.data.get("status") == "run_done":
            done += 1
            if done == runs:
                return parts
    return parts


async def test_thread_stream_follows_every_run(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        # The first run waits 2 s before it starts, so the stream joins before its events.
        first = await sdk.runs.create(thread_id, "slow", input={"delay_s": 0}, after_seconds=2)
        reader = asyncio.ensure_future(_read_thread_stream(target, thread_id, runs=2))
        await sdk.runs.join(thread_id, first["run_id"])
        second = await sdk.runs.create(thread_id, "interrupting", input={"question": "q"})
        parts = await asyncio.wait_for(reader, timeout=30)
        run_ids = [p["data"]["run_id"] for p in parts if p["event"] == "metadata"]
        assert run_ids == [first["run_id"]] * 2 + [second["run_id"]] * 2
        seen.append([shape(p) for p in parts])
    # An interrupt in the oracle's values carries "response_schema".
    for parts in seen:
        for part in parts:
            for interrupt in part["data"].get("__interrupt__", []):
                interrupt.pop("response_schema", None)
    assert seen[0] == seen[1]
    assert [p["event"] for p in seen[0]] == ["metadata", "values", "values", "metadata"] * 2


async def test_stateless_on_completion(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        kept = []
        for on_completion in ("keep", "delete"):
            body = {"assistant_id": "slow", "input": {}, "on_completion": on_completion}
            async with target.http.post("/runs/wait", json=body) as response:
                assert response.status == 200
                thread_path = response.headers["Content-Location"].split("/runs/")[0]

            async def settled(
                path: str = thread_path, keep: bool = on_completion == "keep"
            ) -> bool:
                status = (await request(target, "GET", path))[0]  # noqa: B023
                return status == (200 if keep else 404)

            await eventually(settled, timeout_s=30)
            kept.append((await request(target, "GET", thread_path))[0])
        seen.append(kept)
    assert seen[0] == seen[1] == [200, 404]


async def test_cancel_many_by_a_status_no_run_has_is_a_404(pair: tuple[Target, Target]) -> None:
    seen = []
    for target in pair:
        sdk = target.client
        thread_id, (run_id,) = await _slow_runs(target, 1)
        running = await request(target, "POST", "/runs/cancel", {"status": "running"})
        await sdk.runs.join(thread_id, run_id)
        status = (await sdk.runs.get(thread_id, run_id))["status"]
        nothing = await request(target, "POST", "/runs/cancel", {"status": "running"})
        seen.append((running[0], status, nothing[0], nothing[1]))
    assert seen[0][:3] == seen[1][:3] == (204, "interrupted", 404)
    ours, theirs = seen[0][3], seen[1][3]
    assert ours["detail"] == theirs["detail"] == "No runs found to cancel."
    assert ours["error"]["code"] == "run_not_found"
