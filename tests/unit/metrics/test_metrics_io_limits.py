"""The node plugin's volume metrics (metrics.io_limits): what /metrics serves is byte for byte what the
previous collector, built on prometheus_client's family classes, exposed for the same volumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from localcsi.fs.block_devices import IoCounters
from localcsi.metrics.io_limits import Counters, IoLimitCollector, Limits
from localcsi.metrics.text import exposition

pytestmark = pytest.mark.unit


class PreviousIoLimitCollector(Collector):
    """IoLimitCollector.collect as it was before its families were written by hand (commit 8e2d0be)."""

    def __init__(self, published: int, limits: Limits, counters: Counters) -> None:
        self.published, self.limits, self.counters = published, limits, counters

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "localcsi_published_volumes",
            "Volumes published to pods on this node (each pod's use of a volume counts once).",
            value=self.published,
        )
        family = GaugeMetricFamily(
            "localcsi_volume_io_limit",
            "IO limit in force for a volume's pods, per direction (read, write) and unit (bytes, ops) per second.",
            labels=["vg", "lv", "direction", "unit"],
        )
        for vg, lv, values in self.limits:
            for (direction, unit), limit in sorted(values.items()):
                family.add_metric([vg, lv, direction, unit], limit)
        yield family
        for name, documentation, field in (
            ("localcsi_volume_read_bytes", "Bytes read from a published volume's device.", "read_bytes"),
            ("localcsi_volume_written_bytes", "Bytes written to a published volume's device.", "written_bytes"),
            ("localcsi_volume_reads", "Reads completed by a published volume's device.", "reads"),
            ("localcsi_volume_writes", "Writes completed by a published volume's device.", "writes"),
        ):
            counter = CounterMetricFamily(name, documentation, labels=["vg", "lv"])
            for vg, lv, io in self.counters:
                counter.add_metric([vg, lv], getattr(io, field))
            yield counter


def openmetrics_latest(collector: Collector) -> bytes:
    return bytes(openmetrics.generate_latest(collector))  # type: ignore[no-untyped-call]  # untyped upstream


def registries(published: int, limits: Limits, counters: Counters) -> tuple[CollectorRegistry, CollectorRegistry]:
    """The collector now and before, each in its own registry, fed the same volumes."""
    now, before = CollectorRegistry(), CollectorRegistry()
    now.register(IoLimitCollector(lambda: published, lambda: limits, lambda: counters))
    before.register(PreviousIoLimitCollector(published, limits, counters))
    return now, before


def parsed(text: bytes) -> list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]:
    return [
        (family.name, family.type, family.documentation, [(s.name, s.labels, s.value) for s in family.samples])
        for family in text_string_to_metric_families(text.decode())
    ]


AWKWARD = ['vg "quoted"', "vg\\back", "vg\nnewline"]
LIMITS: Limits = [
    ("localcsi-a", "csi-x", {("write", "bytes"): 1_048_576, ("read", "ops"): 40}),
    ("localcsi-a", "csi-none", {}),  # published without limits: no series
    ("localcsi-b", "csi-y", {("read", "bytes"): 1, ("write", "ops"): 10**9, ("read", "ops"): 999_999,
                             ("write", "bytes"): 2**60}),
    *((vg, 'lv "q" \\ \n', {("write", "bytes"): 5_000_000}) for vg in AWKWARD),
]  # fmt: skip
COUNTERS: Counters = [
    ("localcsi-a", "csi-x", IoCounters(120, 2048 * 512, 400, 16384 * 512)),
    ("localcsi-a", "csi-none", IoCounters(0, 0, 0, 0)),
    ("localcsi-b", "csi-y", IoCounters(2**32 + 7, 2**53 + 512, 10**12, 18_446_744_073_709_551_615 * 512)),
    *((vg, 'lv "q" \\ \n', IoCounters(1, 512, 2, 1024)) for vg in AWKWARD),
]


def test_the_plugins_volume_metrics_are_what_the_previous_collector_exposed() -> None:
    now, before = registries(7, LIMITS, COUNTERS)
    served = exposition(now)
    assert served == generate_latest(before)
    assert generate_latest(now) == generate_latest(before), "read through samples too"
    assert openmetrics_latest(now) == openmetrics_latest(before)
    families = parsed(served)
    assert [name for name, *_ in families] == [
        "localcsi_published_volumes",
        "localcsi_volume_io_limit",
        "localcsi_volume_read_bytes",
        "localcsi_volume_written_bytes",
        "localcsi_volume_reads",
        "localcsi_volume_writes",
    ]
    assert families == parsed(generate_latest(before))
    samples = {(name, tuple(sorted(labels.items()))): value for *_, rows in families for name, labels, value in rows}
    assert samples[("localcsi_volume_io_limit", (("direction", "write"), ("lv", "csi-x"), ("unit", "bytes"),
                                                 ("vg", "localcsi-a")))] == 1_048_576  # fmt: skip
    assert samples[("localcsi_volume_written_bytes_total", (("lv", "csi-x"), ("vg", "localcsi-a")))] == 16384 * 512
    assert samples[("localcsi_volume_reads_total", (("lv", 'lv "q" \\ \n'), ("vg", "vg\nnewline")))] == 1
    assert not [name for name, _ in samples if name.endswith("_created")], "counters without _created samples"
    assert not [labels for name, labels in samples if name.endswith("io_limit") and ("lv", "csi-none") in labels]


def test_no_volume_published_leaves_the_families_empty_as_before() -> None:
    now, before = registries(0, [], [])
    assert exposition(now) == generate_latest(before)
    assert b"localcsi_volume_reads_total{" not in exposition(now)


name = st.text(max_size=10)
limit_values = st.dictionaries(
    st.tuples(st.sampled_from(["read", "write"]), st.sampled_from(["bytes", "ops"])), st.integers(0, 2**64)
)
counter = st.integers(0, 2**64)


@given(
    st.integers(0, 10**4),
    st.lists(st.tuples(name, name, limit_values), max_size=6),
    st.lists(st.tuples(name, name, st.builds(IoCounters, counter, counter, counter, counter)), max_size=6),
)
def test_any_volumes_are_exposed_as_the_previous_collector_exposed_them(
    published: int, limits: Limits, counters: Counters
) -> None:
    now, before = registries(published, limits, counters)
    assert exposition(now) == generate_latest(before)
