"""The simple API (POST /graphs/execute, GET /executions/{id}) and WS /ws/graphs/{graph_id}."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import ANY

import aiohttp
import pytest

from tests.integration.worker.conftest import Worker
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _execute(
    http: aiohttp.ClientSession, worker: Worker, graph_id: str, input_data: Any, **options: Any
) -> str:
    body = {"graph_id": graph_id, "input_data": input_data, "execution_options": options}
    async with http.post(f"{worker.url}/graphs/execute", json=body) as response:
        assert response.status == 202
        answer = await response.json()
    assert answer["status"] == "running"
    execution_id: str = answer["execution_id"]
    return execution_id


async def _execution(http: aiohttp.ClientSession, worker: Worker, execution_id: str) -> Any:
    async with http.get(f"{worker.url}/executions/{execution_id}") as response:
        assert response.status == 200
        return await response.json()


async def _has_status(
    http: aiohttp.ClientSession, worker: Worker, execution_id: str, status: str
) -> bool:
    return (await _execution(http, worker, execution_id))["status"] == status


async def test_execute_then_poll_until_completed(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    execution_id = await _execute(http, worker, "pipeline", {"delay_s": 0.02})
    await eventually(lambda: _has_status(http, worker, execution_id, "completed"))
    done = await _execution(http, worker, execution_id)
    assert done["result"]["steps"] == ["extract", "transform", "load"]
    assert done["error"] is None


async def test_failed_execution_reports_its_error(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    execution_id = await _execute(http, worker, "flaky", {"fail": True, "message": "nope"})
    await eventually(lambda: _has_status(http, worker, execution_id, "failed"))
    failed = await _execution(http, worker, execution_id)
    assert failed["error"] == "RequestedFailure: nope"


async def test_unknown_execution_and_bad_body(worker: Worker, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{worker.url}/executions/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "execution_not_found"
    bad = {"graph_id": "pipeline", "input_data": {}, "execution_options": {"priority": 1}}
    async with http.post(f"{worker.url}/graphs/execute", json=bad) as response:
        assert response.status == 422
        error = (await response.json())["error"]
    assert error["code"] == "unsupported_field"
    assert "execution_options.priority" in error["message"]
    unknown = {"graph_id": "nope", "input_data": {}}
    async with http.post(f"{worker.url}/graphs/execute", json=unknown) as response:
        assert response.status == 404
        # The simple API's errors keep their own shape (no "detail").
        assert await response.json() == {"error": {"code": "assistant_not_found", "message": ANY}}


async def _receive_until(ws: aiohttp.ClientWebSocketResponse, match: dict[str, Any]) -> Any:
    """The next frame whose fields include ``match`` (frames before it are skipped)."""
    while True:
        frame = await ws.receive_json(timeout=5)
        if all(frame.get(k) == v for k, v in match.items()):
            return frame


async def test_websocket_streams_events_of_the_graph(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{worker.url}/ws/graphs/pipeline") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        execution_id = await _execute(http, worker, "pipeline", {"delay_s": 0})
        running = await _receive_until(ws, {"type": "status", "execution_id": execution_id})
        assert running["status"] == "running"
        custom = await _receive_until(ws, {"type": "event", "event": "custom"})
        assert custom["data"]["step"] == "extract"
        completed = await _receive_until(ws, {"type": "status", "status": "completed"})
        assert completed["execution_id"] == execution_id


async def test_websocket_cancel(worker: Worker, http: aiohttp.ClientSession) -> None:
    execution_id = await _execute(http, worker, "pipeline", {"delay_s": 5})
    await eventually(lambda: _has_status(http, worker, execution_id, "running"))
    await eventually(lambda: worker.manager.running == 1)
    async with http.ws_connect(f"{worker.url}/ws/graphs/pipeline") as ws:
        await ws.send_json({"command": "cancel", "execution_id": execution_id})
        ack = await _receive_until(ws, {"type": "ack"})
        assert ack["command"] == "cancel"
        await _receive_until(ws, {"type": "status", "status": "cancelled"})
    assert (await _execution(http, worker, execution_id))["status"] == "cancelled"


async def test_websocket_pause_then_resume(worker: Worker, http: aiohttp.ClientSession) -> None:
    execution_id = await _execute(http, worker, "pipeline", {"delay_s": 0.3})
    async with http.ws_connect(f"{worker.url}/ws/graphs/pipeline") as ws:
        await _receive_until(ws, {"type": "event", "event": "custom"})  # inside step one
        await ws.send_json({"command": "pause", "execution_id": execution_id})
        assert (await _receive_until(ws, {"type": "ack"}))["command"] == "pause"
        await _receive_until(ws, {"type": "status", "status": "paused"})
        paused = await _execution(http, worker, execution_id)
        # The step that was running finished and was checkpointed; the others wait.
        assert paused["result"]["steps"] == ["extract"]
        await ws.send_json({"command": "resume", "execution_id": execution_id})
        assert (await _receive_until(ws, {"type": "ack"}))["command"] == "resume"
        await _receive_until(
            ws, {"type": "status", "execution_id": execution_id, "status": "completed"}
        )
    done = await _execution(http, worker, execution_id)
    assert done["result"]["steps"] == ["extract", "transform", "load"]


async def test_websocket_resume_answers_an_interrupt(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    execution_id = await _execute(http, worker, "approval", {"topic": "coffee"})
    await eventually(lambda: _has_status(http, worker, execution_id, "interrupted"))
    waiting = await _execution(http, worker, execution_id)
    assert waiting["result"]["__interrupt__"][0]["value"]["proposal"] == "Proposal about coffee"
    async with http.ws_connect(f"{worker.url}/ws/graphs/approval") as ws:
        await ws.send_json(
            {"command": "resume", "execution_id": execution_id, "value": {"approved": True}}
        )
        await _receive_until(ws, {"type": "status", "status": "completed"})
    done = await _execution(http, worker, execution_id)
    assert done["result"]["published"] is True


async def test_websocket_bad_commands_get_error_frames_and_the_socket_stays_open(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{worker.url}/ws/graphs/pipeline") as ws:
        await ws.receive_json(timeout=5)
        await ws.send_str("not json")
        assert (await ws.receive_json(timeout=5))["error"]["code"] == "invalid_command"
        await ws.send_json({"command": "explode", "execution_id": "x"})
        assert (await ws.receive_json(timeout=5))["error"]["code"] == "invalid_command"
        await ws.send_json({"command": "cancel", "execution_id": "missing"})
        frame = await ws.receive_json(timeout=5)
        assert frame["error"]["code"] == "execution_not_found"
        assert frame["command"] == "cancel"
        execution_id = await _execute(http, worker, "pipeline", {})
        await eventually(lambda: _has_status(http, worker, execution_id, "completed"))
        await ws.send_json({"command": "resume", "execution_id": execution_id})
        assert (await _receive_until(ws, {"type": "error"}))["error"]["code"] == "not_resumable"
        assert not ws.closed


async def test_websocket_unknown_graph_is_404(worker: Worker, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{worker.url}/ws/graphs/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "assistant_not_found"
