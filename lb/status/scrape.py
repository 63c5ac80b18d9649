"""What a worker says about its runs, read from its Prometheus text (``GET /metrics``).

While someone watches the status, one request per worker per sampling interval gives the
three facts the page shows: runs in progress (``graphfleet_worker_runs_in_progress``), runs
queued (``graphfleet_worker_runs_queued``) and runs ended by outcome
(``graphfleet_worker_runs_total{outcome=...}``, summed over graphs). The health check's
``running``/``queued`` would give the first two but not the outcomes, so ``/metrics`` is the
one source that answers all three.

The body comes from the network: it is read up to :data:`MAX_METRICS_BYTES`, every line that
does not parse is skipped, values must be finite and non-negative, outcome names are kept only
when they look like names (``[a-z_]{1,32}``) and at most :data:`MAX_OUTCOMES` of them, so a
broken or hostile worker can neither crash the sampler nor grow its memory.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

MAX_METRICS_BYTES = 1024 * 1024
MAX_OUTCOMES = 16
RUNNING = "graphfleet_worker_runs_in_progress"
QUEUED = "graphfleet_worker_runs_queued"
ENDED = "graphfleet_worker_runs_total"
_OUTCOME = re.compile(r'(?:^|[{,])\s*outcome="([a-z_]{1,32})"')


@dataclass(frozen=True, slots=True)
class WorkerRuns:
    """Runs one worker reported: in progress, queued, and ended so far (cumulative)."""

    running: int = 0
    queued: int = 0
    ended: dict[str, float] = field(default_factory=dict)


def _value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_worker_metrics(body: bytes) -> WorkerRuns:
    """Read a worker's Prometheus text; never raises, whatever the bytes."""
    running = queued = 0
    ended: dict[str, float] = {}
    for line in body[:MAX_METRICS_BYTES].decode("utf-8", "replace").splitlines():
        if not line.startswith("graphfleet_worker_runs_"):
            continue  # comments, other metrics, and anything else
        name, _, rest = line.partition("{")
        if not rest:
            name, _, tail = line.partition(" ")
            labels = ""
        else:
            labels, _, tail = rest.rpartition("}")
        fields = tail.split()
        value = _value(fields[0]) if fields else None
        if value is None:
            continue
        name = name.strip()
        if name == RUNNING:
            running = int(min(value, 1e9))
        elif name == QUEUED:
            queued = int(min(value, 1e9))
        elif name == ENDED:
            match = _OUTCOME.search(labels)
            outcome = match.group(1) if match else "other"
            if outcome in ended or len(ended) < MAX_OUTCOMES:
                ended[outcome] = ended.get(outcome, 0.0) + value
    return WorkerRuns(running=running, queued=queued, ended=ended)


def ended_between(older: WorkerRuns | None, newer: WorkerRuns) -> dict[str, int]:
    """Runs that ended between two reads of one worker. The first read is a baseline (what
    ended before the LB looked is not "the last minutes"); a counter that went down means the
    worker restarted, and everything it counts since then is new."""
    if older is None:
        return {}
    delta: dict[str, int] = {}
    for outcome, total in newer.ended.items():
        before = older.ended.get(outcome, 0.0)
        count = total - before if total >= before else total
        if count >= 1:
            delta[outcome] = int(count)
    return delta
