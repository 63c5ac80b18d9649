"""Prometheus metrics of the load balancer, in the app's own CollectorRegistry.

Per-request series are counted through cached label children (one dict lookup on the hot
path). Everything that is a *state* — in-flight requests, instance states, registry size,
queue length, ejections — is read from the live objects at scrape time by a custom collector,
so the proxy does no metrics work for it at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lb.fleet.registry import Snapshot

PREFIX = "graphfleet_lb_"
# From a fast JSON call (1 ms) to a run streamed for many minutes (30 min).
DURATION_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0,
)  # fmt: skip
STATES = ("unknown", "healthy", "unhealthy", "draining")
# A response the client got a status for but whose body was cut because the worker broke off
# (it died mid-run): counted apart, because its status says success.
ABORTED: Final = -1
_STATUS_CLASS = {
    0: "0xx", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx", ABORTED: "aborted",
}  # fmt: skip
STATUS_CLASSES: Final = (*_STATUS_CLASS.values(), "other")


class LBMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests",
            "Requests proxied, by instance, method and status class (aborted: the worker "
            "broke off a response already under way).",
            ("instance", "method", "status_class"),
            registry=r,
        )
        self.request_duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from a request's arrival to its last response byte.",
            ("instance",),
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self.health_checks = Counter(
            PREFIX + "health_checks",
            "Active health checks, by instance and outcome.",
            ("instance", "outcome"),
            registry=r,
        )
        self.health_check_duration = Histogram(
            PREFIX + "health_check_duration_seconds",
            "Duration of active health checks.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.retries = Counter(
            PREFIX + "retries", "Requests sent again to another instance.", registry=r
        )
        self.no_instance = Counter(
            PREFIX + "rejected_requests",
            "Requests answered 503 by the LB itself, by reason.",
            ("reason",),
            registry=r,
        )
        self.queue_wait = Histogram(
            PREFIX + "queue_wait_seconds",
            "Time requests waited for an instance with room.",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.admin_requests = Counter(
            PREFIX + "admin_requests",
            "Admin API calls, by operation and outcome.",
            ("operation", "outcome"),
            registry=r,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(
        self, instance: str, method: str, status: int, duration_s: float, aborted: bool = False
    ) -> None:
        key = (instance, method, ABORTED if aborted else status // 100)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(instance, method, _STATUS_CLASS.get(key[2], "other")),
                self.request_duration.labels(instance),
            )
            if len(self._children) < 10_000:  # bounded: methods and instances are finite
                self._children[key] = children
        children[0].inc()
        children[1].observe(duration_s)

    def forget_instance(self, instance: str) -> None:
        """Drop the series of an instance that left the fleet."""
        for key in [k for k in self._children if k[0] == instance]:
            method, klass = key[1], _STATUS_CLASS.get(key[2], "other")
            del self._children[key]
            for metric, labels in (
                (self.requests, (instance, method, klass)),
                (self.request_duration, (instance,)),
            ):
                with contextlib.suppress(KeyError):
                    metric.remove(*labels)

    def watch(
        self,
        snapshot: Callable[[], Snapshot],
        queue_length: Callable[[], int],
        ejections_total: Callable[[], int],
    ) -> None:
        """Register the scrape-time collector over the live registry and queue."""
        self.registry.register(_StateCollector(snapshot, queue_length, ejections_total))


class _StateCollector(Collector):
    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        queue_length: Callable[[], int],
        ejections_total: Callable[[], int],
    ) -> None:
        self._snapshot = snapshot
        self._queue_length = queue_length
        self._ejections_total = ejections_total

    def collect(self) -> Iterator[Any]:
        snap = self._snapshot()
        inflight = GaugeMetricFamily(
            PREFIX + "inflight_requests", "Requests in flight, by instance.", labels=["instance"]
        )
        reported = GaugeMetricFamily(
            PREFIX + "instance_reported_load",
            "Background runs reported by each worker's health check.",
            labels=["instance"],
        )
        capacity = GaugeMetricFamily(
            PREFIX + "instance_max_capacity", "Capacity of each instance.", labels=["instance"]
        )
        state = GaugeMetricFamily(
            PREFIX + "instance_state",
            "1 for the state each instance is in.",
            labels=["instance", "state"],
        )
        for instance in snap.instances:
            inflight.add_metric([instance.id], instance.load.inflight)
            reported.add_metric([instance.id], instance.reported_load)
            capacity.add_metric([instance.id], instance.max_capacity)
            for name in STATES:
                state.add_metric([instance.id, name], 1.0 if instance.state == name else 0.0)
        yield inflight
        yield reported
        yield capacity
        yield state
        size = GaugeMetricFamily(PREFIX + "instances", "Instances in the registry.")
        size.add_metric([], len(snap.instances))
        yield size
        routable = GaugeMetricFamily(
            PREFIX + "routable_instances", "Instances taking new requests."
        )
        routable.add_metric([], len(snap.routable))
        yield routable
        queued = GaugeMetricFamily(PREFIX + "queue_length", "Requests waiting for capacity.")
        queued.add_metric([], self._queue_length())
        yield queued
        ejections = CounterMetricFamily(
            PREFIX + "ejections", "Instances ejected by passive outlier detection."
        )
        ejections.add_metric([], self._ejections_total())
        yield ejections
