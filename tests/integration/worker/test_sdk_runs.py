"""Background runs, join, join_stream, interrupts, cancellation and multitasking via the SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.integration.worker.conftest import Worker
from tests.support import eventually
from worker.keys import STORE
from worker.store.base import RunRecord

pytestmark = pytest.mark.integration


async def test_background_run_then_join(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 0.05})
    assert run["status"] in ("pending", "running")
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result["steps"] == ["extract", "transform", "load"]
    done = await client.runs.get(thread["thread_id"], run["run_id"])
    assert done["status"] == "success"
    listed = await client.runs.list(thread["thread_id"])
    assert [r["run_id"] for r in listed] == [run["run_id"]]


async def test_background_run_then_join_stream(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "pipeline", input={"delay_s": 0.05}, stream_mode=["updates"]
    )
    nodes = [
        next(iter(part.data))
        async for part in client.runs.join_stream(thread["thread_id"], run["run_id"])
        if part.event == "updates"
    ]
    assert nodes == ["extract", "transform", "load"]


async def test_join_stream_resumes_after_last_event_id(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "pipeline", input={}, stream_mode=["updates"]
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    parts = [p async for p in client.runs.join_stream(thread["thread_id"], run["run_id"])]
    assert [p.event for p in parts] == ["metadata", "updates", "updates", "updates"]
    parts = parts[1:]  # the metadata event has no id to resume after
    rest = [
        p
        async for p in client.runs.join_stream(
            thread["thread_id"], run["run_id"], last_event_id=parts[0].id
        )
    ]
    assert rest == parts[1:]


async def test_interrupt_then_resume(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.wait(thread["thread_id"], "approval", input={"topic": "tea"})
    [interrupt] = first["__interrupt__"]
    assert interrupt["value"]["proposal"] == "Proposal about tea"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    [task] = (await client.threads.get_state(thread["thread_id"]))["tasks"]
    assert (task["name"], task["path"]) == ("review", ["__pregel_pull", "review"])
    final = await client.runs.wait(
        thread["thread_id"], "approval", command={"resume": {"approved": True, "comment": "ok"}}
    )
    assert final["published"] is True
    assert final["comment"] == "ok"
    assert "__interrupt__" not in final


async def test_cancel_a_running_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 5})
    await eventually(
        lambda: _status(client, thread["thread_id"], run["run_id"], "running"), timeout_s=5
    )

    async def first_step_under_way() -> bool:
        # The input's checkpoint is written (its next step pending): without it, a cancel
        # leaves the thread with nothing to resume, and it reads idle, as on the official
        # server.
        return bool((await client.threads.get_state(thread["thread_id"]))["next"])

    await eventually(first_step_under_way, timeout_s=5)
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    cancelled = await client.runs.get(thread["thread_id"], run["run_id"])
    assert cancelled["status"] == "interrupted"
    # Stopped in its first step: that step is left to run, as after an interrupt.
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"


async def test_a_run_stopped_while_its_record_is_written_ends(
    worker: Worker, client: LangGraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that reaches a run after its admission and before its task begins (its record
    still being written) stops it as the task begins: the run ends and gives its slot back."""
    store = worker.app[STORE]
    writing, written = asyncio.Event(), asyncio.Event()
    admitted: list[str] = []
    begin_run = store.begin_run

    async def slow_begin_run(record: RunRecord, **kwargs: Any) -> None:
        admitted.append(record.run_id)
        writing.set()
        await written.wait()
        await begin_run(record, **kwargs)

    monkeypatch.setattr(store, "begin_run", slow_begin_run)
    thread_id = (await client.threads.create())["thread_id"]
    create = asyncio.create_task(client.runs.create(thread_id, "pipeline", input={"delay_s": 5}))
    await asyncio.wait_for(writing.wait(), timeout=5)
    worker.manager.stop(admitted[0], "interrupt")
    written.set()
    run = await create
    await eventually(lambda: worker.manager.load == 0, timeout_s=5)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


async def _status(client: LangGraphClient, thread_id: str, run_id: str, status: str) -> bool:
    return (await client.runs.get(thread_id, run_id))["status"] == status


async def test_multitask_reject_is_a_conflict(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 5})
    with pytest.raises(ConflictError):
        await client.runs.create(
            thread["thread_id"], "pipeline", input={}, multitask_strategy="reject"
        )
    await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)


async def test_multitask_enqueue_runs_one_after_the_other(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 0.05})
    second = await client.runs.create(
        thread["thread_id"], "pipeline", input={"delay_s": 0}, multitask_strategy="enqueue"
    )
    result = await client.runs.join(thread["thread_id"], second["run_id"])
    assert result["steps"] == ["extract", "transform", "load"] * 2
    assert (await client.runs.get(thread["thread_id"], first["run_id"]))["status"] == "success"


async def test_multitask_interrupt_cancels_the_active_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 5})
    await eventually(lambda: _status(client, thread["thread_id"], first["run_id"], "running"))
    second = await client.runs.create(
        thread["thread_id"], "pipeline", input={"delay_s": 0}, multitask_strategy="interrupt"
    )
    await client.runs.join(thread["thread_id"], second["run_id"])
    assert (await client.runs.get(thread["thread_id"], first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread["thread_id"], second["run_id"]))["status"] == "success"


async def test_multitask_rollback_forgets_the_active_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "pipeline", input={})
    slow = await client.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 0.3})
    # Let the slow run write a checkpoint of its own before it is rolled back.
    await eventually(lambda: _steps(client, thread["thread_id"], 4), timeout_s=5)
    fast = await client.runs.create(
        thread["thread_id"], "pipeline", input={"delay_s": 0}, multitask_strategy="rollback"
    )
    result = await client.runs.join(thread["thread_id"], fast["run_id"])
    assert result["steps"] == ["extract", "transform", "load"] * 2
    with pytest.raises(NotFoundError):
        await client.runs.get(thread["thread_id"], slow["run_id"])


async def _steps(client: LangGraphClient, thread_id: str, count: int) -> bool:
    state = await client.threads.get_state(thread_id)
    return len(state["values"].get("steps", [])) >= count


async def test_failing_graph_surfaces_as_sdk_error(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    with pytest.raises(Exception, match="RequestedFailure: boom"):
        await client.runs.wait(
            thread["thread_id"], "flaky", input={"fail": True, "message": "boom"}
        )
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "flaky", input={"fail": True, "message": "again"}
        )
    ]
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "RequestedFailure", "message": "again"}
    runs = await client.runs.list(thread["thread_id"])
    assert {r["status"] for r in runs} == {"error"}
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"


async def test_langsmith_fields_are_accepted_and_a_bad_field_refused_by_name(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "pipeline", input={}, langsmith_tracing={"project_name": "p"}
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    events = [
        part.event
        async for part in client.runs.stream(
            thread["thread_id"], "pipeline", input={}, feedback_keys=["s"]
        )
    ]
    assert events[0] == "metadata"
    assert "error" not in events
    with pytest.raises(UnprocessableEntityError, match="stream_mode"):
        await client.runs.create(thread["thread_id"], "pipeline", stream_mode="tokens")  # type: ignore[arg-type]


async def test_unknown_assistant_and_thread_are_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("nope")
    with pytest.raises(NotFoundError):
        await client.runs.create("00000000-0000-0000-0000-000000000000", "pipeline")


async def test_stateless_runs(client: LangGraphClient, worker: Worker) -> None:
    result = await client.runs.wait(None, "pipeline", input={})
    assert result["steps"] == ["extract", "transform", "load"]
    events = [p.event async for p in client.runs.stream(None, "pipeline", input={"payload": 1})]
    assert events[0] == "metadata"
    assert events.count("values") == 4
    assert await client.threads.search() == []  # stateless threads are deleted after the run


async def test_threads_search_and_state_update(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"team": "a"}, graph_id="pipeline")
    await client.threads.create(metadata={"team": "b"})
    found = await client.threads.search(metadata={"team": "a"})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    await client.threads.update_state(thread["thread_id"], {"steps": ["manual"]})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["steps"] == ["manual"]
    result = await client.runs.wait(thread["thread_id"], "pipeline", input={})
    assert result["steps"] == ["manual", "extract", "transform", "load"]


async def test_events_and_debug_stream_modes(client: LangGraphClient) -> None:
    parts = [
        p
        async for p in client.runs.stream(
            None, "pipeline", input={"payload": 1}, stream_mode=["events", "updates"]
        )
    ]
    names = [p.event for p in parts]
    assert names[0] == "metadata"
    assert names.count("updates") == 3
    kinds = {p.data["event"] for p in parts if p.event == "events"}
    assert {"on_chain_start", "on_chain_end"} <= kinds
    debug = [p async for p in client.runs.stream(None, "flaky", input={}, stream_mode="debug")]
    assert {p.data["type"] for p in debug if p.event == "debug"} >= {"task", "task_result"}
