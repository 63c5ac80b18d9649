"""The contract between the load balancer and its workers, beyond plain HTTP.

Both sides import these names, so a path added to the worker cannot be forgotten by the LB:

- which requests *create work* (a run): only those count against a worker's capacity at the
  LB, and only those may be sent to a worker that is draining; of those, which answer at once
  and leave the run going (a *background* run), so the LB counts it as load after the answer
  (as many as ``X-Fleet-Runs-Started`` says, for a batch);
- which paths *name* a thread or an execution: the LB keeps them on the worker that holds them;
- the ``at_capacity`` promise: a worker answering ``503 {"error": {"code": "at_capacity"}}``
  did nothing, so the LB may send the same request to another worker;
- the health body: ``GET /health`` answers ``{"status", "timestamp", "current_load",
  "max_capacity", ...}``, 503 while draining;
- paths under ``/fleet/`` are calls between workers: the LB never forwards them (404).
"""

from __future__ import annotations

from typing import Final, TypedDict

HEALTH_PATH: Final = "/health"
AT_CAPACITY: Final = "at_capacity"
THREAD_HEADER: Final = "X-Thread-ID"
# Calls between the workers of a fleet (a stop for a run another worker holds): never a
# client's, so never forwarded by the LB.
FLEET_PREFIX: Final = "/fleet/"

# POST paths that start a run. The LangGraph API's are suffixes of /threads/{id}/... too.
RUN_CREATING_SUFFIXES: Final = ("/runs", "/runs/wait", "/runs/stream", "/runs/batch")
RUN_CREATING_PATHS: Final = frozenset({"/graphs/execute"})
# Of those, the ones answered as soon as the run is created, not when it ends.
BACKGROUND_RUN_SUFFIXES: Final = ("/runs", "/runs/batch")
# On such an answer, how many runs it left going when that is not one (``/runs/batch``): the
# LB counts them all as the worker's load until a health check reports on them. The LB
# keeps it to itself.
RUNS_STARTED_HEADER: Final = "X-Fleet-Runs-Started"

# Paths whose second segment names where the work lives: /threads/{id}/..., /executions/{id}.
THREAD_PREFIX: Final = "/threads/"
EXECUTION_PREFIX: Final = "/executions/"
# Second segments under /threads/ that are collection actions, not thread ids.
_THREAD_ACTIONS: Final = frozenset({"search", "count", "prune"})


class HealthBody(TypedDict, total=False):
    status: str  # "ok" or "draining"
    timestamp: str
    current_load: int  # runs in progress plus queued
    max_capacity: int
    running: int
    queued: int
    instance_id: str


def creates_work(method: str, path: str) -> bool:
    """Whether a request starts a run (and so takes one of a worker's capacity slots)."""
    return method == "POST" and (path.endswith(RUN_CREATING_SUFFIXES) or path in RUN_CREATING_PATHS)


def starts_background_run(method: str, path: str) -> bool:
    """Whether a successful answer to this request leaves a run going on the worker (the
    LangGraph API's ``POST /runs`` and ``/runs/batch``, ``POST /graphs/execute``)."""
    return method == "POST" and (
        path.endswith(BACKGROUND_RUN_SUFFIXES) or path in RUN_CREATING_PATHS
    )


def affinity_key(path: str) -> str | None:
    """The thread or execution a path names: ``/threads/abc/runs`` → ``thread:abc``,
    ``/executions/x`` → ``execution:x``; ``None`` for anything else."""
    if path.startswith(THREAD_PREFIX):
        kind, rest = "thread:", path[len(THREAD_PREFIX) :]
    elif path.startswith(EXECUTION_PREFIX):
        kind, rest = "execution:", path[len(EXECUTION_PREFIX) :]
    else:
        return None
    ident = rest.partition("/")[0]
    if not ident or (kind == "thread:" and ident in _THREAD_ACTIONS):
        return None
    return kind + ident


def at_capacity_body(message: str) -> dict[str, dict[str, str]]:
    """The body of a worker's ``503 at_capacity`` answer."""
    return {"error": {"code": AT_CAPACITY, "message": message}}


def is_at_capacity(body: object) -> bool:
    """Whether a decoded JSON body is a worker's ``at_capacity`` promise."""
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    return isinstance(error, dict) and error.get("code") == AT_CAPACITY
