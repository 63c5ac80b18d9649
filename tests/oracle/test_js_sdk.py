"""graphfleet against the official LangGraph Server, through LangGraph's JavaScript SDK.

What a chat UI (agent-chat-ui, ``useStream``) calls, as scenarios of ``tests/oracle/js/
scenarios.mjs`` run by Node with ``@langchain/langgraph-sdk`` (pinned by ``package-lock.json``
in that folder, installed by ``make oracle``). Each scenario runs once against ``langgraph dev``
and once against each graphfleet: one worker, and the LB in front of two workers sharing one
SQLite store. Observations are compared by ``shape`` (keys, types, status values) or
``normalised`` (exact values, ids and timestamps aside); where the two servers differ today,
the comparison leaves that part out and its comment says what differs.

Without Node 20+ or the installed SDK these tests skip, saying why (under
``REQUIRE_SERVICES=1`` they fail).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest
import structlog

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.worker.conftest import WorkerFactory
from tests.oracle.harness import GRAPHS_CONFIG, normalised, shape
from tests.support import eventually
from worker.graphs import assistant_id_for

pytestmark = pytest.mark.integration

JS_DIR = Path(__file__).resolve().parent / "js"
SCENARIOS = JS_DIR / "scenarios.mjs"
SDK_PACKAGE = JS_DIR / "node_modules" / "@langchain" / "langgraph-sdk" / "package.json"
MIN_NODE_MAJOR = 20
SCENARIO_TIMEOUT_S = 30.0
ANSWER = "It is sunny in Paris today."

Observed = dict[str, Any]
Observe = Callable[[str], Awaitable[tuple[Observed, Observed]]]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node() -> str:
    """The path of Node 20+, once the SDK is installed in ``tests/oracle/js``."""
    path = shutil.which("node")
    if path is None:
        _unavailable("node is not installed (Node.js 20+ runs the JavaScript SDK tests)")
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        _unavailable(f"node {version} is older than {MIN_NODE_MAJOR}")
    if not SDK_PACKAGE.is_file():
        _unavailable("@langchain/langgraph-sdk is not installed in tests/oracle/js (make oracle)")
    return path


def _node_env() -> dict[str, str]:
    """Nothing inherited that could give the SDK an API key or a proxy."""
    return {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}


async def run_scenario(node: str, url: str, scenario: str) -> Observed:
    """Run one scenario of ``scenarios.mjs`` against ``url``; its observations."""
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCENARIOS),
        url,
        scenario,
        cwd=JS_DIR,
        env=_node_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SCENARIO_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{scenario} against {url}: over {SCENARIO_TIMEOUT_S} s") from None
    assert proc.returncode == 0, f"{scenario} against {url}:\n{err.decode(errors='replace')}"
    observed: Observed = json.loads(out)
    return observed


@pytest.fixture(scope="module")
def oracle_observed() -> dict[str, Observed]:
    """Each scenario's observations of the oracle, made once for both graphfleet targets."""
    return {}


@pytest.fixture(params=["worker", "lb"])
async def graphfleet_url(
    request: pytest.FixtureRequest, make_worker: WorkerFactory, tmp_path: Path
) -> AsyncIterator[str]:
    """One worker; or the LB in front of two workers sharing one SQLite store."""
    if request.param == "worker":
        yield (await make_worker(graphs=GRAPHS_CONFIG)).url
        return
    shared = {"graphs": GRAPHS_CONFIG, "store": f"sqlite:///{tmp_path}/fleet.sqlite"}
    workers = [await make_worker(instance_id=name, **shared) for name in ("a", "b")]
    balancer = LoadBalancer(
        LBSettings(
            port=0,
            admin_port=0,
            instances=",".join(w.url for w in workers),
            strategy="round_robin",  # new threads alternate between the two workers
            data_dir=tmp_path / "lb",
            health_interval_s=0.1,
            access_log=False,
        )
    )
    await balancer.start()
    try:
        assert balancer.components is not None
        registry = balancer.components.registry
        await eventually(lambda: len(registry.snapshot.routable) == 2)
        yield f"http://127.0.0.1:{balancer.proxy_port}"
    finally:
        await balancer.stop()


@pytest.fixture
def observe(
    node: str, graphfleet_url: str, oracle_url: str, oracle_observed: dict[str, Observed]
) -> Observe:
    """``observe(scenario)``: ``(graphfleet's observations, the oracle's)``."""

    async def both(scenario: str) -> tuple[Observed, Observed]:
        ours = await run_scenario(node, graphfleet_url, scenario)
        if scenario not in oracle_observed:
            oracle_observed[scenario] = await run_scenario(node, oracle_url, scenario)
        return ours, oracle_observed[scenario]

    return both


def pick(value: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value[key] for key in keys}


def without(value: Any, key: str) -> Any:
    """``value`` with ``key`` removed from every object in it."""
    if isinstance(value, dict):
        return {k: without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [without(v, key) for v in value]
    return value


def events(parts: list[dict[str, Any]]) -> list[str]:
    return [part["event"] for part in parts]


# A Thread: the oracle's has "error" (null, or the error of its last run) and a config of
# {"configurable": {}} once a run touched it.
THREAD_KEYS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status")
# A Run: the oracle echoes the whole run config in "kwargs" and "metadata".
RUN_KEYS = ("run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status")


def thread_shape(thread: dict[str, Any]) -> Any:
    return shape(pick(thread, *THREAD_KEYS, "values", "interrupts"))


def state_shape(state: dict[str, Any]) -> Any:
    """A ThreadState's shape, where both servers agree.

    The oracle's also has "checkpoint_id" and "parent_checkpoint_id" at the top, no
    "checkpoint_map" in its checkpoints (graphfleet's are the SDK's Checkpoint type), no
    "checkpoint_ns" in the checkpoint of a state read at a checkpoint, and more metadata
    (langgraph_*, run_attempt, user_id: ``metadata_agrees`` compares it).
    """
    checkpoints = {
        key: None if state[key] is None else pick(state[key], "thread_id", "checkpoint_id")
        for key in ("checkpoint", "parent_checkpoint")
    }
    return shape(
        {**pick(state, "values", "next", "tasks", "interrupts", "created_at"), **checkpoints}
    )


def metadata_agrees(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """graphfleet's metadata is the oracle's without the oracle's deployment keys."""
    ours, theirs = normalised(ours), normalised(theirs)
    return {key: theirs.get(key) for key in ours} == ours


def stream_agrees(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """The same events, each with data of the same shape.

    Ids differ by design: graphfleet numbers every event (a stream can always be resumed
    with Last-Event-ID); the oracle only when the run was created with stream_resumable. A
    message's metadata in the oracle has more keys; an interrupt, "response_schema": null.
    """
    assert events(ours) == events(theirs)
    for mine, other in zip(ours, theirs, strict=True):
        if mine["event"] == "messages":
            assert normalised(mine["data"][0]) == normalised(other["data"][0])
            assert metadata_agrees(mine["data"][1], other["data"][1])
        else:
            assert shape(mine["data"]) == shape(without(other["data"], "response_schema"))


async def test_assistants(observe: Observe) -> None:
    ours, theirs = await observe("assistants")
    for key in ("found", "got", "created", "again", "updated", "got_updated", "tagged"):
        assert shape(ours[key]) == shape(theirs[key]), key
    for seen in (ours, theirs):
        assert [a["assistant_id"] for a in seen["found"]] == [assistant_id_for("chat")]
        assert seen["got"] == seen["found"][0]
        assert seen["again"] == seen["created"]  # do_nothing: the existing one, unchanged
        assert seen["conflict"] == {"http_status": 409}
        assert (seen["updated"]["name"], seen["updated"]["version"]) == ("js2", 2)
        assert seen["got_updated"] == seen["updated"]
        assert seen["tagged"] == [seen["updated"]]
        assert seen["deleted"] is None
        assert seen["after_delete"] == seen["missing"] == {"http_status": 404}


async def test_threads(observe: Observe) -> None:
    ours, theirs = await observe("threads")
    for key in ("created", "got"):
        assert shape(pick(ours[key], *THREAD_KEYS, "config")) == shape(
            pick(theirs[key], *THREAD_KEYS, "config")
        )
    assert normalised(ours["answer"]) == normalised(theirs["answer"])
    for key in ("state", "at_checkpoint", "state_after"):
        assert state_shape(ours[key]) == state_shape(theirs[key]), key
        assert normalised(ours[key]["values"]) == normalised(theirs[key]["values"]), key
        assert metadata_agrees(ours[key]["metadata"], theirs[key]["metadata"]), key
    assert [state_shape(h) for h in ours["history"]] == [state_shape(h) for h in theirs["history"]]
    assert [h["next"] for h in ours["history"]] == [h["next"] for h in theirs["history"]]
    # updateState: the oracle's answer also has "checkpoint_id" and "configurable".
    assert shape(without(ours["updated"]["checkpoint"], "checkpoint_map")) == shape(
        theirs["updated"]["checkpoint"]
    )
    for seen in (ours, theirs):
        assert seen["got"] == seen["created"]
        assert seen["found"] == [seen["got"]]
        assert seen["answer"]["messages"][-1]["content"] == ANSWER
        assert seen["history"][0]["checkpoint"] == seen["state"]["checkpoint"]
        assert seen["at_checkpoint"]["values"] == seen["history"][1]["values"]
        assert seen["state_after"]["values"]["messages"][-1]["content"] == "Edited."
        assert seen["state_after"]["checkpoint"] == seen["updated"]["checkpoint"]
        assert seen["history_after"] == [seen["state_after"]]
        assert seen["missing"] == {"http_status": 404}


async def test_stream(observe: Observe) -> None:
    ours, theirs = await observe("stream")
    stream_agrees(ours["events"], theirs["events"])
    assert thread_shape(ours["thread"]) == thread_shape(theirs["thread"])
    for seen in (ours, theirs):
        metadata = seen["events"][0]
        assert metadata["event"] == "metadata"
        # onRunCreated: the SDK read the run from the answer's Content-Location.
        assert seen["run_created"] == {
            "run_id": metadata["data"]["run_id"],
            "thread_id": seen["thread_id"],
        }
        tokens = [p["data"][0]["content"] for p in seen["events"] if p["event"] == "messages"]
        assert "".join(tokens).endswith(ANSWER)
        assert seen["thread"]["status"] == "idle"


async def test_join_stream_starts_with_metadata(observe: Observe) -> None:
    ours, theirs = await observe("join_stream")
    stream_agrees(ours["events"], theirs["events"])
    assert shape(pick(ours["final"], *RUN_KEYS)) == shape(pick(theirs["final"], *RUN_KEYS))
    for seen in (ours, theirs):
        assert seen["events"][0] == {
            "event": "metadata",
            "data": {"run_id": seen["run"]["run_id"], "attempt": 1},
            "id": seen["events"][0]["id"],
        }
        assert seen["events"][-1]["data"]["messages"][-1]["content"] == ANSWER
        assert seen["final"]["status"] == "success"


async def test_create_and_join(observe: Observe) -> None:
    ours, theirs = await observe("create_join")
    assert normalised(ours["joined"]) == normalised(theirs["joined"])
    for key in ("run", "got"):
        assert shape(pick(ours[key], *RUN_KEYS)) == shape(pick(theirs[key], *RUN_KEYS)), key
    assert thread_shape(ours["thread"]) == thread_shape(theirs["thread"])
    for seen in (ours, theirs):
        assert seen["run"]["status"] == "pending"
        assert seen["run_created"] == pick(seen["run"], "run_id", "thread_id")
        assert seen["joined"]["messages"][-1]["content"] == ANSWER
        assert seen["got"]["status"] == "success"
        assert [pick(r, "run_id", "status") for r in seen["listed"]] == [
            pick(seen["got"], "run_id", "status")
        ]
        assert seen["thread"]["status"] == "idle"


async def test_interrupt_and_resume(observe: Observe) -> None:
    ours, theirs = await observe("interrupt")
    stream_agrees(ours["paused"], theirs["paused"])
    stream_agrees(ours["resumed"], theirs["resumed"])
    for key in ("state", "state_after"):
        assert state_shape(ours[key]) == state_shape(theirs[key]), key
    for key in ("thread", "thread_after"):
        assert thread_shape(ours[key]) == thread_shape(theirs[key]), key
    for seen in (ours, theirs):
        paused = [p["data"] for p in seen["paused"] if p["event"] == "updates"]
        assert [i["value"] for i in paused[-1]["__interrupt__"]] == [{"question": "ok?"}]
        assert seen["state"]["next"] == ["ask"]
        assert [i["value"] for i in seen["state"]["tasks"][0]["interrupts"]] == [
            {"question": "ok?"}
        ]
        assert seen["thread"]["status"] == "interrupted"
        assert list(seen["thread"]["interrupts"]) == [seen["state"]["tasks"][0]["id"]]
        assert seen["resumed"][-1]["data"] == {"question": "ok?", "answer": "yes"}
        assert (seen["state_after"]["next"], seen["state_after"]["tasks"]) == ([], [])
        assert (seen["thread_after"]["status"], seen["thread_after"]["interrupts"]) == ("idle", {})


def _searched_by_key(seen: dict[str, Any]) -> dict[str, Any]:
    """``seen`` with its search's items ordered by key.

    Without an index the order is the store's own: newest first on graphfleet's (as
    LangGraph's SQL stores), insertion order on the in-memory server; the two agree only when
    both items have the same timestamp.
    """
    items = sorted(seen["searched"]["items"], key=lambda item: item["key"])
    return {**seen, "searched": {**seen["searched"], "items": items}}


async def test_store(observe: Observe) -> None:
    ours, theirs = await observe("store")
    # The oracle's in-memory store still lists a namespace whose last item was deleted; a
    # store in a database (graphfleet's, the official server's on Postgres) does not.
    assert shape(without(_searched_by_key(ours), "namespaces_after")) == shape(
        without(_searched_by_key(theirs), "namespaces_after")
    )
    assert [ns[2:] for ns in ours["namespaces_after"]["namespaces"]] == [["b"]]
    assert ["b"] in [ns[2:] for ns in theirs["namespaces_after"]["namespaces"]]
    for seen in (ours, theirs):
        assert seen["got"]["value"] == {"text": "apple pie"}
        # A timestamp without its offset would be local time to JavaScript's Date.
        created_at = datetime.fromisoformat(seen["got"]["created_at"])
        assert created_at.utcoffset() is not None, seen["got"]["created_at"]
        assert seen["got"]["createdAt"] == seen["got"]["created_at"]
        assert seen["absent"] is None
        assert sorted(i["key"] for i in seen["searched"]["items"]) == ["k1", "k2"]
        assert [i["key"] for i in seen["filtered"]["items"]] == ["k2"]
        assert [i["key"] for i in seen["queried"]["items"]] == ["k1"]
        assert [ns[2:] for ns in seen["namespaces"]["namespaces"]] == [["a"], ["b"]]
        assert seen["deleted"] is None
        assert seen["after_delete"] is None


async def test_abort_with_cancel_ends_the_run_without_a_traceback(
    observe: Observe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs() as logs:
        ours, theirs = await observe("abort")
    assert shape(pick(ours["run"], *RUN_KEYS)) == shape(pick(theirs["run"], *RUN_KEYS))
    assert thread_shape(ours["thread"]) == thread_shape(theirs["thread"])
    for seen in (ours, theirs):
        assert seen["first"]["event"] == "metadata"
        assert seen["run"]["status"] == "interrupted"
        assert seen["thread"]["status"] == "interrupted"
    # graphfleet's workers (in this process) noticed the client leave and said so as an
    # event; nothing logged an error or a traceback (aiohttp's and asyncio's go to logging).
    assert "stream_client_left_run_cancelled" in {entry["event"] for entry in logs}
    assert [e for e in logs if e.get("exc_info") or e["log_level"] in ("error", "critical")] == []
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failures] == []
