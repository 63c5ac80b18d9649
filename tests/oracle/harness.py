"""The oracle harness: the official LangGraph Server beside graphfleet, and ways to compare them.

graphfleet speaks the LangGraph Server API; what "compatible" means is decided by running the
same calls against the official in-memory server (``langgraph dev`` from
``langgraph-cli[inmem]``, pinned in ``tests/oracle/requirements.txt``) and comparing status
codes and response shapes. The oracle lives in its own virtualenv, ``.oracle-venv/``, built by
``make oracle`` (``make test`` depends on it); it is never a runtime dependency.

How a differential test reads::

    from tests.oracle.harness import Target, shape

    async def test_thread_create(targets: tuple[Target, Target]) -> None:
        ours, theirs = [await t.client.threads.create() for t in targets]
        assert shape(ours) == shape(theirs)

Fixtures (``tests/oracle/conftest.py``; a module elsewhere gets them with
``pytest_plugins = ["tests.oracle.conftest"]`` in its folder's conftest):

- ``oracle_url`` (session): one ``langgraph dev`` process for the whole session, serving
  ``tests/oracle/graphs/langgraph.json`` from a copy in a temporary directory (the in-memory
  server writes ``.langgraph_api/`` into its working directory). No network: tracing off,
  no API keys, no analytics, no version check.
- ``targets``: ``(graphfleet, oracle)``, each a ``Target`` with an SDK client and a raw
  aiohttp session; graphfleet is one real worker serving the same langgraph.json.
- ``target``: the same, parametrised (``"graphfleet"`` / ``"oracle"``), for a test that
  asserts the same expected values on each.

``shape(value)`` maps a JSON value to its shape: keys kept, strings become ``"str"`` except
the values of ``KEPT_KEYS`` (statuses, types, graph ids: part of the contract), numbers become
their type, ids and timestamps never matter. ``normalised(value)`` keeps every value but
replaces UUIDs and timestamps, for outputs that must agree exactly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from langgraph_sdk.client import LangGraphClient

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
ORACLE_VENV = REPO / ".oracle-venv"
ORACLE_CLI = ORACLE_VENV / "bin" / "langgraph"
GRAPHS_DIR = Path(__file__).resolve().parent / "graphs"
GRAPHS_CONFIG = GRAPHS_DIR / "langgraph.json"
# How long a ``slow`` run that a test stops sleeps: long enough to be stopped mid-way on a
# busy machine, short enough that a stop ``langgraph dev`` applies only at the end (its
# runs sometimes finish their step before they notice a cancel) does not hold a test long.
SLOW_S = 8

# String values that are part of the contract, kept by ``shape``.
KEPT_KEYS = frozenset(
    {"status", "multitask_strategy", "type", "graph_id", "event", "on_completion", "role"}
)
_UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID = re.compile(f"^{_UUID_TEXT}$", re.I)
_EMBEDDED_UUID = re.compile(_UUID_TEXT, re.I)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


class OracleError(RuntimeError):
    """The oracle did not start; the message carries the end of its log."""


@dataclass
class Target:
    """One server under comparison: its name, base URL, SDK client and raw HTTP session.

    ``http`` has ``url`` as its base URL: ``target.http.get("/ok")``.
    """

    name: str
    url: str
    client: LangGraphClient
    http: aiohttp.ClientSession


def oracle_installed() -> bool:
    return ORACLE_CLI.is_file()


def _oracle_env() -> dict[str, str]:
    """A clean environment: nothing inherited that could reach the network or LangSmith."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_ok(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OracleError(f"langgraph dev exited {proc.returncode}:\n{_tail(log)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{url}/ok", timeout=1.0) as response,
        ):
            if response.status == 200:
                return
        # A child process, not a coroutine: polling it from a sync fixture is the only way.
        time.sleep(0.2)
    raise OracleError(f"langgraph dev not ready within {timeout_s} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def run_oracle(
    workdir: Path, graphs_dir: Path = GRAPHS_DIR, timeout_s: float = 120.0
) -> Iterator[str]:
    """Run ``langgraph dev`` on a free loopback port over a copy of ``graphs_dir``; yield its URL.

    The copy is the server's working directory: ``dependencies`` resolve against it as
    ``langgraph dev`` resolves them (the working directory), and its in-memory state files
    stay out of the source tree. The process group is stopped on exit, whatever happened.
    """
    app_dir = workdir / "app"
    shutil.copytree(graphs_dir, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "oracle.log"
    command = [str(ORACLE_CLI), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--config", "langgraph.json"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=app_dir,
            env=_oracle_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ok(proc, url, log, timeout_s)
        yield url
    finally:
        _stop(proc)


def _scalar_shape(key: str | None, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return type(value).__name__
    if isinstance(value, str):
        if _UUID.match(value):
            return "<uuid>"
        if key in KEPT_KEYS:  # an event name may carry a namespace: "updates|child:<uuid>"
            return _EMBEDDED_UUID.sub("<uuid>", value)
        return "<timestamp>" if _TIMESTAMP.match(value) else "str"
    return type(value).__name__


def shape(value: Any, key: str | None = None) -> Any:
    """The shape of a JSON value: keys and contract values kept, data and ids abstracted.

    Dict keys that are UUIDs (a ``checkpoint_map``, messages by id) become ``"<uuid>"``.
    """
    if isinstance(value, dict):
        return {
            ("<uuid>" if _UUID.match(str(k)) else k): shape(v, str(k)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [shape(v, key) for v in value]
    return _scalar_shape(key, value)


def normalised(value: Any) -> Any:
    """``value`` with UUIDs and timestamps replaced, everything else kept."""
    if isinstance(value, dict):
        return {("<uuid>" if _UUID.match(str(k)) else k): normalised(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalised(v) for v in value]
    if isinstance(value, str):
        return "<timestamp>" if _TIMESTAMP.match(value) else _EMBEDDED_UUID.sub("<uuid>", value)
    return value
