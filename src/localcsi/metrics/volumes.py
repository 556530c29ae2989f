"""LogicalVolume metrics, kept by the agent that carries the resources out on its node.

The agent is where a LogicalVolume turns Ready or Failed, so that is where provisioning is timed (from
the resource's ``creationTimestamp`` to the status write that makes it Ready) and failures are
counted: once per resource, by the one process that acts on it, whatever the number of controller
replicas. Phase counts come from the agent's informer cache at scrape time. Summed over the nodes'
agents they are the cluster's; a resource for a node without an agent is nobody's and not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Linear and thin volumes take about a second; a restore or a clone copies data for minutes.
PROVISIONING_BUCKETS: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
PHASES: Final = ("Pending", "Creating", "Ready", "Failed", "Deleting")
KINDS: Final = ("Volume", "Snapshot")

Resource = Mapping[str, Any]


def created_at(obj: Resource) -> float | None:
    """The resource's creationTimestamp as Unix time; None when it has none or it does not parse."""
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _kind(obj: Resource) -> str:
    kind = str((obj.get("spec") or {}).get("kind") or "Volume")
    return kind if kind in KINDS else "Volume"


def _phase(obj: Resource) -> str:
    phase = str((obj.get("status") or {}).get("phase") or "Pending")
    return phase if phase in PHASES else "Pending"


class VolumeMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.provisioning = Histogram(
            "localcsi_logicalvolume_provisioning_seconds",
            "From a LogicalVolume's creation to its first Ready status, by node and kind (Volume, Snapshot).",
            ["node", "kind"],
            buckets=PROVISIONING_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "localcsi_logicalvolume_failures",
            "LogicalVolumes the agent marked Failed, by node, kind and error code.",
            ["node", "kind", "code"],
            registry=registry,
        )
        self.reconciles = Counter(
            "localcsi_logicalvolume_reconciles",
            "LogicalVolume reconciles by result: ok, retry (a transient error, retried with backoff), "
            "conflict (changed meanwhile), error (unexpected).",
            ["node", "result"],
            registry=registry,
        )

    def ready(self, node: str, obj: Resource) -> None:
        """``obj`` just turned Ready (it was not before this status write)."""
        created = created_at(obj)
        if created is not None:
            self.provisioning.labels(node, _kind(obj)).observe(max(0.0, self.clock() - created))

    def failed(self, node: str, obj: Resource, code: str) -> None:
        self.failures.labels(node, _kind(obj), code).inc()

    def reconciled(self, node: str, result: str) -> None:
        self.reconciles.labels(node, result).inc()


VOLUMES: Final = VolumeMetrics()


class PhaseCollector(Collector):
    """``localcsi_logicalvolumes{node,kind,phase}`` from a cache of this node's resources, at scrape time.
    Every (kind, phase) pair is written, zeros too, so a query for Failed volumes finds 0 rather than nothing.
    """

    def __init__(self, node: str, cache: Callable[[], Mapping[str, Resource]]) -> None:
        self.node = node
        self.cache = cache

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(((kind, phase) for kind in KINDS for phase in PHASES), 0)
        for obj in self.cache().values():
            counts[_kind(obj), _phase(obj)] += 1
        help_text = "LogicalVolumes of this node by kind and phase."
        gauge = GaugeMetricFamily("localcsi_logicalvolumes", help_text, labels=("node", "kind", "phase"))
        for (kind, phase), count in counts.items():
            gauge.add_metric((self.node, kind, phase), count)
        yield gauge
