"""Prometheus metrics of one worker, in a registry the app owns (``graphfleet_worker_*``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class WorkerMetrics:
    """Run counters and gauges; ``render()`` gives the Prometheus text exposition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "graphfleet_worker_runs",
            "Runs that ended, by graph and outcome.",
            ["graph_id", "outcome"],
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "graphfleet_worker_run_duration_seconds",
            "Wall time of runs from start of execution to end, by graph.",
            ["graph_id"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "graphfleet_worker_runs_in_progress",
            "Runs executing now.",
            registry=self.registry,
        )
        self.queued = Gauge(
            "graphfleet_worker_runs_queued",
            "Runs admitted and waiting to start (behind their thread or a delay).",
            registry=self.registry,
        )
        self.capacity = Gauge(
            "graphfleet_worker_max_capacity",
            "Runs this worker takes at once (WORKER_MAX_CONCURRENCY).",
            registry=self.registry,
        )
        self.rejected = Counter(
            "graphfleet_worker_runs_rejected",
            "Run requests refused with 503 because the worker was full or draining.",
            registry=self.registry,
        )

        self.webhooks = WebhookMetrics(self.registry)

    def run_finished(self, graph_id: str, outcome: str, duration_s: float) -> None:
        self.runs.labels(graph_id=graph_id, outcome=outcome).inc()
        self.run_duration.labels(graph_id=graph_id).observe(duration_s)

    def set_gauges(self, running: int, queued: int) -> None:
        self.in_progress.set(running)
        self.queued.set(queued)

    def render(self) -> bytes:
        return generate_latest(self.registry)


WEBHOOK_ATTEMPT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WebhookMetrics:
    """Webhook deliveries (``worker.webhooks``): attempts by outcome, their latency, and the
    outbox (the same store-wide numbers on every worker: aggregate them with ``max``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "graphfleet_worker_webhook_deliveries",
            "Webhook delivery attempts by event type and outcome "
            "(delivered, retry: will be tried again, failed: given up).",
            ["event", "outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "graphfleet_worker_webhook_attempt_duration_seconds",
            "Wall time of one webhook attempt, from connecting to the receiver's answer.",
            buckets=WEBHOOK_ATTEMPT_BUCKETS_S,
            registry=registry,
        )
        self.outbox_size = Gauge(
            "graphfleet_worker_webhook_outbox_size",
            "Webhook deliveries pending in the store (all workers').",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "graphfleet_worker_webhook_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery (0 when none).",
            registry=registry,
        )
