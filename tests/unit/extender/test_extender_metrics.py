"""The extender's metrics: request counts exposed as prometheus_client's own Counter and Histogram would
expose them, and the cache sync age."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from localcsi.extender.metrics import BUCKETS, VERBS, Metrics, RequestCounts
from localcsi.extender.service import Extender

pytestmark = pytest.mark.unit

STATUSES = (HTTPStatus.OK, HTTPStatus.BAD_REQUEST, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.INTERNAL_SERVER_ERROR)
# Durations around every bucket bound, the bounds themselves included (``le`` is inclusive).
DURATIONS = st.one_of(
    st.sampled_from(BUCKETS),
    st.floats(min_value=0.0, max_value=2.0, allow_nan=False),
    st.sampled_from(BUCKETS).map(lambda bound: bound * (1 + 1e-9)),
)
REQUESTS = st.lists(st.tuples(st.sampled_from(VERBS), st.sampled_from(STATUSES), DURATIONS), max_size=40)
Requests = list[tuple[str, HTTPStatus, float]]
FILTERED = st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000)), max_size=10)


def samples(registry: CollectorRegistry) -> set[str]:
    """The exposition's sample lines, without the optional ``_created`` series (sums are added in the same
    order on both sides, so their floats agree to the last digit)."""
    return {
        line
        for line in generate_latest(registry).decode().splitlines()
        if line and not line.startswith("#") and "_created" not in line
    }


def library_registry(requests: Requests, filtered: list[tuple[int, int]]) -> CollectorRegistry:
    """What prometheus_client's Counter and Histogram expose for the same requests and filters."""
    registry = CollectorRegistry()
    counts = Counter(
        "localcsi_extender_requests",
        "Extender HTTP requests by verb and status code.",
        ["verb", "code"],
        registry=registry,
    )
    latency = Histogram(
        "localcsi_extender_request_seconds",
        "Time to answer filter and prioritize.",
        ["verb"],
        buckets=BUCKETS,
        registry=registry,
    )
    nodes = Counter(
        "localcsi_extender_filtered_nodes", "Nodes judged by filter, by result.", ["result"], registry=registry
    )
    for verb in VERBS:
        latency.labels(verb)
    for result in ("passed", "failed"):
        nodes.labels(result)
    for verb, status, seconds in requests:
        counts.labels(verb, str(status.value)).inc()
        latency.labels(verb).observe(seconds)
    for passed, failed in filtered:
        nodes.labels("passed").inc(passed)
        nodes.labels("failed").inc(failed)
    return registry


@given(REQUESTS, FILTERED)
def test_request_counts_expose_what_prometheus_clients_counter_and_histogram_would(
    requests: Requests, filtered: list[tuple[int, int]]
) -> None:
    counts = RequestCounts()
    for verb, status, seconds in requests:
        counts.served(verb, status, seconds)
    for passed, failed in filtered:
        counts.filtered(passed, failed)
    ours = CollectorRegistry()
    ours.register(counts)
    assert samples(ours) == samples(library_registry(requests, filtered))


def test_a_duration_on_a_bound_counts_in_that_bucket_and_above() -> None:
    counts = RequestCounts()
    counts.served("filter", HTTPStatus.OK, 0.001)
    counts.served("filter", HTTPStatus.OK, 5.0)
    registry = CollectorRegistry()
    registry.register(counts)
    bucket = "localcsi_extender_request_seconds_bucket"
    assert registry.get_sample_value(bucket, {"verb": "filter", "le": "0.0005"}) == 0.0
    assert registry.get_sample_value(bucket, {"verb": "filter", "le": "0.001"}) == 1.0
    assert registry.get_sample_value(bucket, {"verb": "filter", "le": "1.0"}) == 1.0
    assert registry.get_sample_value(bucket, {"verb": "filter", "le": "+Inf"}) == 2.0
    assert registry.get_sample_value("localcsi_extender_request_seconds_sum", {"verb": "filter"}) == 5.001
    assert registry.get_sample_value("localcsi_extender_request_seconds_count", {"verb": "prioritize"}) == 0.0


def test_cache_sync_age_counts_from_start_then_from_the_last_sync() -> None:
    now = [100.0]
    metrics = Metrics(Extender(), monotonic=lambda: now[0])
    now[0] = 130.0
    assert metrics.registry.get_sample_value("localcsi_extender_cache_sync_age_seconds") == 30.0
    metrics.synced()
    now[0] = 135.5
    assert metrics.registry.get_sample_value("localcsi_extender_cache_sync_age_seconds") == 5.5
