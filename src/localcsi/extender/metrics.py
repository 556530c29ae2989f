"""The extender's Prometheus metrics: its requests, the nodes filter judged, its reservations and its view.

Each filter and prioritize request is counted as plain numbers under one lock, and those numbers become
metric families only when /metrics is scraped. prometheus_client's Counter and Histogram would take a
lock for each value and run their own Python on every request (an observe and up to four incs): in
bench_scheduler's requests that was 600 cache lines and 49,000 instructions a pod (docs/extender.md,
"Footprint"). The exposition is the same apart from the ``_created`` series.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from http import HTTPStatus

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from localcsi.extender.service import Extender

VERBS = ("filter", "prioritize")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(
        self,
        extender: Extender,
        registry: CollectorRegistry | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._monotonic = monotonic
        self._synced_at: float | None = None
        self._started = monotonic()
        self._requests = RequestCounts()
        self.registry.register(self._requests)
        reserved = Gauge("localcsi_extender_reserved_pods", "Pods holding reservations.", registry=self.registry)
        reserved.set_function(lambda: extender.ready_summary()["reserved_pods"])
        holds = Gauge("localcsi_extender_reserved_pod_nodes", "(pod, node) reservations held.", registry=self.registry)
        holds.set_function(lambda: extender.ready_summary()["reserved_pod_nodes"])
        nodes = Gauge("localcsi_extender_nodes", "Nodes with a storage report.", registry=self.registry)
        nodes.set_function(lambda: extender.ready_summary()["nodes"])
        age = Gauge(
            "localcsi_extender_cache_sync_age_seconds",
            "Seconds since the view was last converged with the informers' caches (since start until the first sync).",
            registry=self.registry,
        )
        age.set_function(self.sync_age)
        self.registry.register(_ReservationCounters(extender))

    def served(self, verb: str, status: HTTPStatus, seconds: float) -> None:
        """One answered filter or prioritize request: its status and how long it took."""
        self._requests.served(verb, status, seconds)

    def filtered(self, passed: int, failed: int) -> None:
        """The nodes one filter request passed and failed."""
        self._requests.filtered(passed, failed)

    def synced(self) -> None:
        """The view was just converged with the informers (first sync, or a periodic resync)."""
        self._synced_at = self._monotonic()

    def sync_age(self) -> float:
        return self._monotonic() - (self._started if self._synced_at is None else self._synced_at)


class RequestCounts:
    """Requests by verb and status code, their durations in ``BUCKETS``, and the nodes filter judged:
    numbers kept under one lock, collected as Prometheus families."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: dict[tuple[str, HTTPStatus], int] = {}
        self._buckets = {verb: [0] * (len(BUCKETS) + 1) for verb in VERBS}  # the last: over every bound
        self._seconds = dict.fromkeys(VERBS, 0.0)
        self._passed = self._failed = 0

    def served(self, verb: str, status: HTTPStatus, seconds: float) -> None:
        bucket = bisect_left(BUCKETS, seconds)  # the first bound at or above: Prometheus' ``le``
        key = (verb, status)
        with self._lock:
            self._by_status[key] = self._by_status.get(key, 0) + 1
            self._buckets[verb][bucket] += 1
            self._seconds[verb] += seconds

    def filtered(self, passed: int, failed: int) -> None:
        with self._lock:
            self._passed += passed
            self._failed += failed

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            by_status = sorted(self._by_status.items())
            buckets = {verb: list(counts) for verb, counts in self._buckets.items()}
            seconds = dict(self._seconds)
            passed, failed = self._passed, self._failed
        requests = CounterMetricFamily(
            "localcsi_extender_requests", "Extender HTTP requests by verb and status code.", labels=["verb", "code"]
        )
        for (verb, status), count in by_status:
            requests.add_metric([verb, str(status.value)], count)
        yield requests
        latency = HistogramMetricFamily(
            "localcsi_extender_request_seconds", "Time to answer filter and prioritize.", labels=["verb"]
        )
        for verb in VERBS:
            cumulative, total = [], 0
            for bound, count in zip((*map(floatToGoString, BUCKETS), "+Inf"), buckets[verb], strict=True):
                total += count
                cumulative.append((bound, float(total)))
            latency.add_metric([verb], cumulative, seconds[verb])
        yield latency
        nodes = CounterMetricFamily(
            "localcsi_extender_filtered_nodes", "Nodes judged by filter, by result.", labels=["result"]
        )
        nodes.add_metric(["passed"], passed)
        nodes.add_metric(["failed"], failed)
        yield nodes


class _ReservationCounters:
    """The extender's own counts as Prometheus counters, read under its lock at scrape time."""

    def __init__(self, extender: Extender) -> None:
        self.extender = extender

    def collect(self) -> Iterator[CounterMetricFamily]:
        summary = self.extender.ready_summary()
        yield CounterMetricFamily(
            "localcsi_extender_reservations", "Pods given a reservation by filter.", value=summary["reservations_made"]
        )
        yield CounterMetricFamily(
            "localcsi_extender_reservations_expired",
            "Reservations released because nothing committed the pod within --reservation-ttl.",
            value=summary["reservations_expired"],
        )
        yield CounterMetricFamily(
            "localcsi_extender_claims_read_live",
            "PVCs filter read from the apiserver because the informer had not delivered them yet.",
            value=summary["claims_read_live"],
        )
