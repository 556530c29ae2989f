"""The node plugin's volumes, their IO limits and the IO they see, for the volumes its last IO limits
resync found published (no command at scrape: the counters are a sysfs file per volume).

Labels are the VG and LV: bounded by the volumes on the node, never by pods. The counters are the LV's
own device's, so a write counts once: cAdvisor's per-pod figures count it again on the disk under the LV.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from localcsi.fs.block_devices import IoCounters

# (vg, lv, {(direction, unit): limit}) for each limited volume
Limits = Sequence[tuple[str, str, dict[tuple[str, str], int]]]
# (vg, lv, counters) for each published volume whose device could be read
Counters = Sequence[tuple[str, str, IoCounters]]

_COUNTERS = (
    ("localcsi_volume_read_bytes", "Bytes read from a published volume's device.", "read_bytes"),
    ("localcsi_volume_written_bytes", "Bytes written to a published volume's device.", "written_bytes"),
    ("localcsi_volume_reads", "Reads completed by a published volume's device.", "reads"),
    ("localcsi_volume_writes", "Writes completed by a published volume's device.", "writes"),
)


class IoLimitCollector(Collector):
    def __init__(
        self,
        published: Callable[[], int],
        limits: Callable[[], Limits],
        counters: Callable[[], Counters],
    ) -> None:
        self.published = published
        self.limits = limits
        self.counters = counters

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "localcsi_published_volumes",
            "Volumes published to pods on this node (each pod's use of a volume counts once).",
            value=self.published(),
        )
        family = GaugeMetricFamily(
            "localcsi_volume_io_limit",
            "IO limit in force for a volume's pods, per direction (read, write) and unit (bytes, ops) per second.",
            labels=["vg", "lv", "direction", "unit"],
        )
        for vg, lv, values in self.limits():
            for (direction, unit), limit in sorted(values.items()):
                family.add_metric([vg, lv, direction, unit], limit)
        yield family
        counted = self.counters()
        for name, documentation, field in _COUNTERS:
            counter = CounterMetricFamily(name, documentation, labels=["vg", "lv"])
            for vg, lv, io in counted:
                counter.add_metric([vg, lv], getattr(io, field))
            yield counter
