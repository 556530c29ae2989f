"""The node plugin's volumes and IO limits, as its last IO limits resync found them (no command at scrape).

Labels are the VG and LV: bounded by the volumes on the node, never by pods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# (vg, lv, {(direction, unit): limit}) for each limited volume
Limits = Sequence[tuple[str, str, dict[tuple[str, str], int]]]


class IoLimitCollector(Collector):
    def __init__(self, published: Callable[[], int], limits: Callable[[], Limits]) -> None:
        self.published = published
        self.limits = limits

    def collect(self) -> Iterator[GaugeMetricFamily]:
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
