"""Differential tests of the assistants API and of error bodies: the same calls to
``langgraph dev`` and to a graphfleet worker, compared by status and shape.

The oracle serves the whole session, so each test tags what it creates with metadata of its
own and filters searches and counts by that tag.

graphfleet's error bodies carry ``error: {code, message}`` beside the official ``detail``;
``_comparable`` leaves that key out (it is checked on its own: message equals detail).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.oracle.harness import SLOW_S, Target, normalised, shape
from tests.support import eventually

pytestmark = pytest.mark.integration

NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def default_id(graph_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, graph_id))


async def _call(target: Target, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with target.http.request(method, path, **kwargs) as response:
        raw = await response.read()
        return response.status, (await response.json() if raw else None)


def _comparable(target: Target, status: int, body: Any) -> Any:
    if target.name == "graphfleet" and status >= 400 and isinstance(body, dict):
        error = body.get("error")
        assert isinstance(error, dict), body
        assert error["message"] == body.get("detail"), body
        body = {k: v for k, v in body.items() if k != "error"}
    return shape(body)


async def both(
    targets: tuple[Target, Target], method: str, path: str, body: Any = None
) -> tuple[Any, Any]:
    """The same call to each server: statuses must agree, shapes must agree; the bodies."""
    ours, theirs = [await _call(t, method, path, body) for t in targets]
    assert ours[0] == theirs[0], (method, path, ours, theirs)
    assert _comparable(targets[0], *ours) == _comparable(targets[1], *theirs), (
        method,
        path,
        ours,
        theirs,
    )
    return ours[1], theirs[1]


async def test_assistant_lifecycle(targets: tuple[Target, Target]) -> None:
    tag = {"test": uuid.uuid4().hex}
    made = {}
    for target in targets:
        status, body = await _call(
            target,
            "POST",
            "/assistants",
            {"graph_id": "contextual", "context": {"greeting": "hi"}, "metadata": tag, "name": "A"},
        )
        assert status == 200
        made[target.name] = body
    ours, theirs = made["graphfleet"], made["oracle"]
    assert shape(ours) == shape(theirs)
    assert normalised(ours) == normalised(theirs)
    ids = {"graphfleet": ours["assistant_id"], "oracle": theirs["assistant_id"]}

    async def each(method: str, suffix: str, body: Any = None) -> tuple[Any, Any]:
        results = []
        for target in targets:
            results.append(
                await _call(target, method, f"/assistants/{ids[target.name]}{suffix}", body)
            )
        (s1, b1), (s2, b2) = results
        assert s1 == s2, (method, suffix, results)
        assert _comparable(targets[0], s1, b1) == _comparable(targets[1], s2, b2), results
        return b1, b2

    await each("GET", "")
    for if_exists, status in (("raise", 409), ("do_nothing", 200)):
        results = [
            await _call(
                t,
                "POST",
                "/assistants",
                {"graph_id": "contextual", "assistant_id": ids[t.name], "if_exists": if_exists},
            )
            for t in targets
        ]
        assert [r[0] for r in results] == [status, status]
    patched, _ = await each("PATCH", "", {"metadata": {"more": 1}, "context": {"greeting": "yo"}})
    assert patched["version"] == 2
    await each("PATCH", "", {"name": "B", "description": "d"})
    versions, _ = await each("POST", "/versions", {})
    assert [v["version"] for v in versions] == [3, 2, 1]
    await each("POST", "/versions", {"metadata": {"more": 1}, "limit": 1, "offset": 1})
    # graphfleet restores the version's context too (see the README); same keys, same shape.
    await each("POST", "/latest", {"version": 1})
    await each("POST", "/latest", {"version": 99})
    await each("POST", "/latest", {})
    await both(targets, "POST", "/assistants/search", {"metadata": tag})
    await both(targets, "POST", "/assistants/search", {"metadata": tag, "select": ["name"]})
    await both(
        targets,
        "POST",
        "/assistants/search",
        {"metadata": tag, "graph_id": "contextual", "name": "b", "sort_by": "name"},
    )
    await both(targets, "POST", "/assistants/count", {"metadata": tag})
    await each("DELETE", "")
    await each("DELETE", "")
    await each("GET", "")
    await each("POST", "/versions", {})


async def test_default_assistants(targets: tuple[Target, Target]) -> None:
    ours, theirs = await both(targets, "GET", f"/assistants/{default_id('contextual')}")
    assert normalised(ours) == normalised(theirs)
    await both(
        targets,
        "POST",
        "/assistants/search",
        {"graph_id": "nested", "metadata": {"created_by": "system"}},
    )
    await both(
        targets, "POST", "/assistants/count", {"graph_id": "contextual", "name": "contextual"}
    )


@pytest.mark.parametrize(
    "graph_id",
    ["contextual", "nested", "interrupting", "chat", "memory", "factory_both", "factory_acm"],
)
async def test_graph_subgraphs_and_schemas(targets: tuple[Target, Target], graph_id: str) -> None:
    aid = default_id(graph_id)
    for suffix in ("/graph", "/graph?xray=true", "/graph?xray=1", "/schemas", "/subgraphs"):
        ours, theirs = await both(targets, "GET", f"/assistants/{aid}{suffix}")
        assert normalised(ours) == normalised(theirs), suffix
    ours, theirs = await both(targets, "GET", f"/assistants/{graph_id}/graph")
    assert normalised(ours) == normalised(theirs)
    await both(targets, "GET", f"/assistants/{aid}/subgraphs?recurse=true")
    await both(targets, "GET", f"/assistants/{aid}/subgraphs/child")
    await both(targets, "GET", f"/assistants/{aid}/graph?xray=-2")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/assistants/not-a-uuid", None),
        ("GET", "/assistants/nope/graph", None),
        ("GET", "/assistants/contextual/schemas", None),
        ("PATCH", "/assistants/not-a-uuid", {"name": "x"}),
        ("DELETE", "/assistants/not-a-uuid", None),
        ("GET", f"/assistants/{uuid.uuid4()}", None),
        ("GET", f"/assistants/{uuid.uuid4()}/schemas", None),
        ("PATCH", f"/assistants/{uuid.uuid4()}", {"name": "x"}),
        ("DELETE", f"/assistants/{uuid.uuid4()}", None),
        ("POST", "/assistants", {"name": "no graph"}),
        ("POST", "/assistants", {"graph_id": "no-such-graph"}),
        ("POST", "/assistants", {"graph_id": "contextual", "assistant_id": "bad"}),
        ("POST", "/assistants", {"graph_id": "contextual", "config": {"tags": "x"}}),
        (
            "POST",
            "/assistants",
            {"graph_id": "contextual", "config": {"configurable": {"a": 1}}, "context": {"a": 2}},
        ),
        (
            "PATCH",
            f"/assistants/{uuid.uuid4()}",
            {"config": {"configurable": {"a": 1}}, "context": {"a": 2}},
        ),
        ("POST", "/assistants", b"{not json"),
        ("POST", "/assistants/search", {"limit": 0}),
        ("POST", "/assistants/search", {"graph_id": "no-such-graph"}),
        ("POST", "/assistants/search", {"select": ["bogus"]}),
        ("POST", "/assistants/count", {"graph_id": "no-such-graph"}),
        ("GET", "/threads/not-a-uuid", None),
        ("GET", f"/threads/{uuid.uuid4()}", None),
        ("GET", "/threads/not-a-uuid/runs/also-not", None),
        ("POST", "/threads/search", b"{not json"),
        ("GET", "/no/such/path", None),
    ],
)
async def test_error_bodies(
    targets: tuple[Target, Target], method: str, path: str, body: Any
) -> None:
    ours, theirs = await both(targets, method, path, body)
    assert isinstance(theirs, dict)
    assert isinstance(ours["detail"], str)


async def test_runs_on_a_custom_assistant(targets: tuple[Target, Target]) -> None:
    """A run takes its assistant's context, the run's own context over it."""
    outputs = []
    for target in targets:
        client = target.client
        assistant = await client.assistants.create("contextual", context={"greeting": "ahoy"})
        aid = assistant["assistant_id"]
        plain = await client.runs.wait(None, aid, input={"name": "bob"})
        over = await client.runs.wait(
            None, aid, input={"name": "bob"}, context={"punctuation": "?"}
        )
        thread = await client.threads.create()
        threaded = await client.runs.wait(thread["thread_id"], aid, input={"name": "cy"})
        by_graph = await client.runs.wait(None, "contextual", input={"name": "di"})
        runs = await client.runs.list(thread["thread_id"])
        outputs.append((plain, over, threaded, by_graph, runs[0]["assistant_id"] == aid))
        await client.assistants.delete(aid)
    assert normalised(outputs[0]) == normalised(outputs[1])
    plain, over, threaded, by_graph, same = outputs[0]
    assert isinstance(plain, dict)
    assert isinstance(over, dict)
    assert isinstance(by_graph, dict)
    assert (plain["answer"], over["answer"], by_graph["answer"]) == (
        "ahoy bob!",
        "ahoy bob?",
        "hello di!",
    )
    assert same


async def _running(target: Target, thread_id: str | None, delay_s: float, assistant_id: str) -> str:
    """A run of ``slow`` that sleeps ``delay_s`` on ``thread_id``, once it reads running."""
    client = target.client
    run = await client.runs.create(thread_id, assistant_id, input={"delay_s": delay_s})

    async def running() -> bool:
        now = await client.runs.get(run["thread_id"], run["run_id"])
        return bool(now["status"] == "running")

    await eventually(running, timeout_s=30)
    return str(run["run_id"])


@pytest.mark.timeout(120)
async def test_deleting_an_assistant_interrupts_its_runs(targets: tuple[Target, Target]) -> None:
    """The same sequence on both: 204, the run reads interrupted at once and after it ended,
    the other assistant's run goes on, and the assistant is gone."""
    seen = []
    for target in targets:
        client = target.client
        doomed = (await client.assistants.create("slow"))["assistant_id"]
        spared = (await client.assistants.create("slow"))["assistant_id"]
        thread_id = (await client.threads.create())["thread_id"]
        other_thread = (await client.threads.create())["thread_id"]
        run_id = await _running(target, thread_id, SLOW_S, doomed)
        # Pending or running: the oracle runs one run at a time.
        other_id = (await client.runs.create(other_thread, spared, input={"delay_s": 1}))["run_id"]
        deleted, _ = await _call(target, "DELETE", f"/assistants/{doomed}")
        at_once = (await client.runs.get(thread_id, run_id))["status"]
        await client.runs.join(thread_id, run_id)
        ended = (await client.runs.get(thread_id, run_id))["status"]
        await client.runs.join(other_thread, other_id)
        other = (await client.runs.get(other_thread, other_id))["status"]
        gone, _ = await _call(target, "GET", f"/assistants/{doomed}")
        seen.append((deleted, at_once, ended, other, gone))
        if target.name == "graphfleet":
            # Deliberately not compared: the oracle's thread reads "busy" after the run ended,
            # later "idle", though its state has a task left (next == ["wait"]), which by its
            # own rule (and after a plain cancel) reads "interrupted". Its worker seems not
            # to find the deleted assistant's graph when it sets the thread's status.
            assert (await client.threads.get(thread_id))["status"] == "interrupted"
        await client.assistants.delete(spared)
    assert seen[0] == seen[1] == (204, "interrupted", "interrupted", "success", 404)


@pytest.mark.timeout(120)
async def test_deleting_an_assistant_with_its_threads_stops_their_runs(
    targets: tuple[Target, Target],
) -> None:
    seen = []
    for target in targets:
        client = target.client
        doomed = (await client.assistants.create("slow"))["assistant_id"]
        thread_id = (await client.threads.create())["thread_id"]
        run_id = await _running(target, thread_id, SLOW_S, doomed)
        deleted, _ = await _call(target, "DELETE", f"/assistants/{doomed}?delete_threads=true")
        thread, _ = await _call(target, "GET", f"/threads/{thread_id}")
        run, _ = await _call(target, "GET", f"/threads/{thread_id}/runs/{run_id}")
        seen.append((deleted, thread, run))
    assert seen[0] == seen[1] == (204, 404, 404)
