"""The node plugin's volumes, their IO limits and the IO they see, for the volumes its last IO limits
resync found published (no command at scrape: the counters come from one read of /proc/diskstats).

Labels are the VG and LV: bounded by the volumes on the node, never by pods. The counters are the LV's
own device's, so a write counts once: cAdvisor's per-pod figures count it again on the disk under the LV.

The per-volume families are TextFamily (``metrics.text``): a series per volume, four counters and up to four
limits each, is what makes the plugin's /metrics large, and their text is written directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from localcsi.fs.block_devices import IoCounters
from localcsi.metrics.text import TextFamily

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

    def collect(self) -> Iterator[GaugeMetricFamily | TextFamily]:
        yield GaugeMetricFamily(
            "localcsi_published_volumes",
            "Volumes published to pods on this node (each pod's use of a volume counts once).",
            value=self.published(),
        )
        limited: list[tuple[str, str, str, str]] = []
        limits: list[int] = []
        for vg, lv, values in self.limits():
            for (direction, unit), limit in sorted(values.items()):
                limited.append((vg, lv, direction, unit))
                limits.append(limit)
        yield TextFamily(
            "localcsi_volume_io_limit",
            "IO limit in force for a volume's pods, per direction (read, write) and unit (bytes, ops) per second.",
            "gauge",
            ("vg", "lv", "direction", "unit"),
            series=limited,
            values=limits,
        )
        counted = self.counters()
        volumes = [(vg, lv) for vg, lv, _io in counted]  # the four families' series
        for name, documentation, field in _COUNTERS:
            value = attrgetter(field)
            counts = [value(io) for _vg, _lv, io in counted]
            yield TextFamily(name, documentation, "counter", ("vg", "lv"), series=volumes, values=counts)
