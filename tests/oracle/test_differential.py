"""graphfleet against the official LangGraph Server: the same SDK calls and raw requests.

Each test compares status codes and response shapes (``shape``) or exact values with ids and
timestamps normalised (``normalised``). Where the two servers differ today, a test compares
the parts that agree and its comment names what differs; fixing a difference means widening
the comparison.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.oracle.harness import SLOW_S, Target, normalised, shape
from tests.support import eventually
from worker.graphs import assistant_id_for

pytestmark = pytest.mark.integration

ZERO = "00000000-0000-0000-0000-000000000000"
ASK_WEATHER = {"messages": [{"role": "user", "content": "weather?"}]}


async def request(target: Target, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw request: the status and the JSON body (``None`` when the body is empty)."""
    async with target.http.request(method, path, json=body) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def pick(value: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The keys both servers agree on, for records where the other keys differ today."""
    return {key: value[key] for key in keys}


async def test_ok_and_info(targets: tuple[Target, Target]) -> None:
    ok = [await request(t, "GET", "/ok") for t in targets]
    info = [await request(t, "GET", "/info") for t in targets]
    # /ok: the oracle adds "services": {}. /info: the oracle has "host" and other flags;
    # graphfleet adds graphs, instance_id, max_capacity, started_at.
    assert [(status, body["ok"]) for status, body in ok] == [(200, True), (200, True)]
    for status, body in info:
        assert status == 200
        assert shape(pick(body, "version", "langgraph_py_version")) == {
            "version": "str",
            "langgraph_py_version": "str",
        }
        assert body["flags"]["assistants"] is True


async def test_assistants_search_and_get(targets: tuple[Target, Target]) -> None:
    found = [await t.client.assistants.search(graph_id="chat") for t in targets]
    assert shape(found[0]) == shape(found[1])
    assert [a["assistant_id"] for a in found[0]] == [assistant_id_for("chat")]
    assert [a["assistant_id"] for a in found[1]] == [assistant_id_for("chat")]
    got = [await t.client.assistants.get(assistant_id_for("chat")) for t in targets]
    assert shape(got[0]) == shape(got[1])
    assert got[0]["graph_id"] == got[1]["graph_id"] == "chat"


THREAD_KEYS = ("thread_id", "created_at", "updated_at", "metadata", "status")


async def test_threads_create_get_search(targets: tuple[Target, Target]) -> None:
    # The oracle's new Thread has config and state_updated_at, values null and no
    # interrupts; graphfleet's has values {} and interrupts {}.
    created = [await t.client.threads.create(metadata={"team": "a"}) for t in targets]
    assert shape(pick(created[0], *THREAD_KEYS)) == shape(pick(created[1], *THREAD_KEYS))
    for target, thread in zip(targets, created, strict=True):
        assert await target.client.threads.get(thread["thread_id"]) == thread
        found = await target.client.threads.search(metadata={"team": "a"})
        assert [pick(t, *THREAD_KEYS) for t in found] == [pick(thread, *THREAD_KEYS)]


async def test_chat_with_tool_calls_wait_and_state(targets: tuple[Target, Target]) -> None:
    results, states, threads = [], [], []
    for target in targets:
        thread = await target.client.threads.create()
        results.append(
            await target.client.runs.wait(thread["thread_id"], "chat", input=ASK_WEATHER)
        )
        states.append(await target.client.threads.get_state(thread["thread_id"]))
        threads.append(await target.client.threads.get(thread["thread_id"]))
    assert normalised(results[0]) == normalised(results[1])
    assert results[0]["messages"][-1]["content"] == "It is sunny in Paris today."
    # State: the oracle has checkpoint_id and parent_checkpoint_id at the top, no
    # checkpoint_map in a checkpoint, and more metadata (langgraph_*, run_attempt, user_id).
    agreed = ("values", "next", "tasks", "interrupts", "created_at")
    assert normalised(pick(states[0], *agreed)) == normalised(pick(states[1], *agreed))
    assert [
        shape(pick(s["checkpoint"], "thread_id", "checkpoint_ns", "checkpoint_id")) for s in states
    ] == [{"thread_id": "<uuid>", "checkpoint_ns": "str", "checkpoint_id": "<uuid>"}] * 2
    assert [t["status"] for t in threads] == ["idle", "idle"]
    assert normalised(threads[0]["values"]) == normalised(threads[1]["values"])


async def test_chat_stream_messages_and_updates(targets: tuple[Target, Target]) -> None:
    streams = []
    for target in targets:
        thread = await target.client.threads.create()
        parts = target.client.runs.stream(
            thread["thread_id"],
            "chat",
            input=ASK_WEATHER,
            stream_mode=["messages-tuple", "values", "updates"],
        )
        streams.append([{"event": p.event, "data": p.data} async for p in parts])
    assert [p["event"] for p in streams[0]] == [p["event"] for p in streams[1]]
    assert streams[0][0]["event"] == "metadata"
    # Message metadata: the oracle adds langgraph_api_url, langgraph_host, run_attempt, ...
    for ours, theirs in zip(*streams, strict=True):
        if ours["event"] == "messages":
            assert normalised(ours["data"][0]) == normalised(theirs["data"][0])
            ours_meta, theirs_meta = normalised(ours["data"][1]), normalised(theirs["data"][1])
            assert {k: theirs_meta.get(k) for k in ours_meta} == ours_meta
        else:
            assert shape(ours) == shape(theirs)
    tokens = [p["data"][0]["content"] for p in streams[0] if p["event"] == "messages"]
    assert "".join(tokens).endswith("It is sunny in Paris today.")


async def test_interrupt_then_resume(targets: tuple[Target, Target]) -> None:
    paused, states, threads, resumed = [], [], [], []
    for target in targets:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        paused.append(await sdk.runs.wait(thread_id, "interrupting", input={"question": "ok?"}))
        states.append(await sdk.threads.get_state(thread_id))
        threads.append(await sdk.threads.get(thread_id))
        resumed.append(await sdk.runs.wait(thread_id, "interrupting", command={"resume": "yes"}))
    # An interrupt in the oracle also carries "response_schema": null.
    assert [[i["value"] for i in p["__interrupt__"]] for p in paused] == [[{"question": "ok?"}]] * 2
    assert [s["next"] for s in states] == [["ask"], ["ask"]]
    assert shape(states[0]["interrupts"]) == shape(states[1]["interrupts"])
    assert shape(states[0]["tasks"]) == shape(states[1]["tasks"])
    assert [s["tasks"][0]["path"] for s in states] == [["__pregel_pull", "ask"]] * 2
    assert [t["status"] for t in threads] == ["interrupted", "interrupted"]
    assert shape(threads[0]["interrupts"]) == shape(threads[1]["interrupts"])
    assert normalised(resumed[0]) == normalised(resumed[1]) == {"question": "ok?", "answer": "yes"}


async def test_update_state(targets: tuple[Target, Target]) -> None:
    updated, states = [], []
    for target in targets:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        await sdk.runs.wait(thread_id, "interrupting", input={"question": "ok?"})
        updated.append(await sdk.threads.update_state(thread_id, {"answer": "no"}, as_node="ask"))
        states.append(await sdk.threads.get_state(thread_id))
    # The oracle's answer also has checkpoint_id and configurable at the top, and its
    # checkpoint no checkpoint_map.
    keys = ("thread_id", "checkpoint_ns", "checkpoint_id")
    assert shape(pick(updated[0]["checkpoint"], *keys)) == shape(
        pick(updated[1]["checkpoint"], *keys)
    )
    assert [s["values"] for s in states] == [{"question": "ok?", "answer": "no"}] * 2
    assert [s["next"] for s in states] == [[], []]


RUN_KEYS = ("run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status")


async def test_background_run_join_get_list_delete(targets: tuple[Target, Target]) -> None:
    seen: list[dict[str, Any]] = []
    for target in targets:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(thread_id, "nested", input={}, stream_subgraphs=True)
        path = f"/threads/{thread_id}/runs/{run['run_id']}"
        seen.append(
            {
                "created": shape(pick(run, *RUN_KEYS, "multitask_strategy")),
                "joined": await sdk.runs.join(thread_id, run["run_id"]),
                "got": (await sdk.runs.get(thread_id, run["run_id"]))["status"],
                "listed": [r["status"] for r in await sdk.runs.list(thread_id)],
                "deleted": (await request(target, "DELETE", path))[0],
                "after": (await request(target, "GET", path))[0],
            }
        )
    # Run.kwargs and Run.metadata differ: the oracle echoes the whole run config there.
    assert seen[0] == seen[1]
    # The child shares "steps" with its parent, so its output repeats "before" (both agree).
    assert seen[0]["joined"] == {"steps": ["before", "before", "inner", "after"]}
    assert seen[0]["created"]["status"] == "pending"


async def test_stateless_stream_of_subgraphs(targets: tuple[Target, Target]) -> None:
    streams = []
    for target in targets:
        parts = target.client.runs.stream(
            None, "nested", input={}, stream_mode="updates", stream_subgraphs=True
        )
        streams.append([shape({"event": p.event, "data": p.data}) async for p in parts])
    assert streams[0] == streams[1]
    assert [p["event"] for p in streams[0]][:3] == ["metadata", "updates", "updates|child:<uuid>"]


async def test_join_stream(targets: tuple[Target, Target]) -> None:
    streams = []
    for target in targets:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(thread_id, "interrupting", input={"question": "x"})
        parts = sdk.runs.join_stream(thread_id, run["run_id"])
        streams.append([shape({"event": p.event, "data": p.data}) async for p in parts])
    # Both start with the run's metadata (the JS client waits for it). An interrupt in the
    # oracle's values carries "response_schema".
    assert [p["event"] for p in streams[0]] == [p["event"] for p in streams[1]]
    assert [p["event"] for p in streams[0]] == ["metadata", "values", "values"]
    assert streams[0][:2] == streams[1][:2]


async def test_cancel_a_running_run(targets: tuple[Target, Target]) -> None:
    seen = []
    for target in targets:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(thread_id, "slow", input={"delay_s": SLOW_S})

        async def running(sdk: Any = sdk, thread_id: str = thread_id, run: Any = run) -> bool:
            return (await sdk.runs.get(thread_id, run["run_id"]))["status"] == "running"

        await eventually(running)
        busy = (await sdk.threads.get(thread_id))["status"]
        cancelled = await request(
            target, "POST", f"/threads/{thread_id}/runs/{run['run_id']}/cancel"
        )
        joined = await sdk.runs.join(thread_id, run["run_id"])
        final = (await sdk.runs.get(thread_id, run["run_id"]))["status"]
        after = (await sdk.threads.get(thread_id))["status"]
        seen.append((busy, cancelled, joined, final, after))
    # Right after the 202 both runs read "interrupted" too (test_differential_threads).
    assert seen[0] == seen[1]
    assert seen[0] == ("busy", (202, None), {"delay_s": SLOW_S}, "interrupted", "interrupted")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", f"/assistants/{ZERO}", None, 404),
        ("GET", f"/threads/{ZERO}", None, 404),
        ("GET", f"/threads/{ZERO}/state", None, 404),
        ("GET", f"/threads/{ZERO}/runs/{ZERO}", None, 404),
        ("POST", f"/threads/{ZERO}/runs/{ZERO}/cancel", None, 404),
        ("POST", "/runs/wait", {"assistant_id": 5}, 422),
        ("POST", "/threads", [1], 422),
        ("POST", "/threads/search", {"limit": "x"}, 422),
        ("POST", "/assistants/search", {"limit": -1}, 422),
        ("GET", "/no/such/route", None, 404),
    ],
)
async def test_error_statuses(
    targets: tuple[Target, Target], method: str, path: str, body: Any, status: int
) -> None:
    # Both bodies carry "detail"; graphfleet's also "error": {"code", "message"}.
    answers = [await request(t, method, path, body) for t in targets]
    assert [a[0] for a in answers] == [status, status]
    assert all(isinstance(a[1], dict) and isinstance(a[1].get("detail"), str) for a in answers)


@pytest.mark.parametrize(
    ("graph_id", "expected"),
    [
        ("factory_plain", "plain model=- access=- q=q"),
        ("factory_config", "config model=m1 access=- q=q"),
        ("factory_runtime", "runtime model=- access=threads.create_run q=q"),
        ("factory_both", "both model=m1 access=threads.create_run q=q"),
        ("factory_async", "async model=m1 access=threads.create_run q=q"),
        ("factory_cm", "cm model=m1 access=- q=q"),
        ("factory_acm", "acm model=- access=threads.create_run q=q"),
    ],
)
async def test_graph_factories_are_called_per_run_as_the_server_calls_them(
    targets: tuple[Target, Target], graph_id: str, expected: str
) -> None:
    answers, states = [], []
    for target in targets:
        sdk = target.client
        thread_id = (await sdk.threads.create())["thread_id"]
        config = {"configurable": {"model": "m1"}}
        answers.append(
            await sdk.runs.wait(thread_id, graph_id, input={"question": "q"}, config=config)
        )
        states.append((await sdk.threads.get_state(thread_id))["values"])
    assert answers[0] == answers[1] == {"question": "q", "answer": expected}
    assert states[0] == states[1] == answers[0]


@pytest.mark.parametrize(
    ("context", "expected"),
    [(None, "hello n!"), ({"greeting": "hey"}, "hey n!"), ({"punctuation": "?"}, "hello n?")],
)
async def test_context_defaults_from_the_context_schema(
    targets: tuple[Target, Target], context: dict[str, str] | None, expected: str
) -> None:
    answers = [
        await t.client.runs.wait(None, "contextual", input={"name": "n"}, context=context)
        for t in targets
    ]
    assert answers[0] == answers[1] == {"name": "n", "answer": expected}


async def test_dependencies_and_env_of_langgraph_json(target: Target) -> None:
    answer = await target.client.runs.wait(None, "from_dependency", input={})
    assert answer == {"greeting": "hello from langgraph.json"}
