"""The agent's metrics: what its last cycle saw, served from that cycle's snapshot.

``AgentCollector.record`` turns one cycle's inventory into families once per cycle (O(LVs)); the first
scrape writes their text and the others of the cycle reuse it, so a scrape runs no command and costs
the same whatever lvm2 would take. Capacity
comes from ``core.nodestorage.vg_capacity`` with the spec's reservedSpace, the function the agent's
NodeLocalStorage status is written from: the two always agree.

Only what the NodeLocalStorage spec selects is reported (``listConfig``: VGs, devices, mount points),
so the host's own VG, full by design, never trips an alert. Every series carries ``node``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from localcsi.core.health import volume_condition
from localcsi.core.model import LogicalVolume, thin_pools
from localcsi.core.nodestorage import DEFAULT_DEVICE_PATTERNS, NodeInventory, StorageSpec, vg_capacity
from localcsi.core.nodestorage_status import offered_devices, scoped_devices
from localcsi.core.tags import OWNER_TAG
from localcsi.metrics.text import TextFamily

# The agent's own health: 503 once no cycle has finished for this many resync periods.
STALE_PERIODS: Final = 3
CYCLE_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

Row = tuple[tuple[str, ...], float]  # label values (after node), value


# name -> (help, labels after "node"); the order of the exposition.
_FAMILIES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "localcsi_vg_size_bytes": ("Size of a managed volume group (vg_size).", ("vg",)),
    "localcsi_vg_free_bytes": ("Free space of a managed volume group (vg_free).", ("vg",)),
    "localcsi_vg_reserved_bytes": ("Space held back by the spec's reservedSpace.", ("vg",)),
    "localcsi_vg_allocatable_bytes": ("Free space new volumes may take: free minus reserved.", ("vg",)),
    "localcsi_vg_lvs": ("Logical volumes in a managed volume group (all of them, not only localcsi's).", ("vg",)),
    "localcsi_thin_pool_size_bytes": ("Data size of a thin pool.", ("vg", "pool")),
    "localcsi_thin_pool_virtual_bytes": ("Sum of the virtual sizes of the thin volumes in a pool.", ("vg", "pool")),
    "localcsi_thin_pool_data_percent": ("Thin pool data use, percent (lvs data_percent).", ("vg", "pool")),
    "localcsi_thin_pool_metadata_percent": ("Thin pool metadata use, percent (lvs metadata_percent).", ("vg", "pool")),
    "localcsi_snapshot_cow_percent": ("Copy-on-write use of a thick snapshot, percent; 100 is lost.", ("vg", "lv")),
    "localcsi_volume_abnormal": ("1 when a localcsi volume or snapshot's VolumeCondition is abnormal.", ("vg", "lv")),
    "localcsi_device_size_bytes": ("Size of a disk or partition the spec selects.", ("device",)),
    "localcsi_device_free": ("1 when that device is free to give out (no PV, filesystem or holder).", ("device",)),
    "localcsi_mountpoint_size_bytes": ("Size of a mount point the spec selects.", ("mountpoint",)),
    "localcsi_mountpoint_available_bytes": ("Space left on that mount point.", ("mountpoint",)),
}
_CYCLE_FAMILIES: Final[dict[str, str]] = {
    "localcsi_agent_last_cycle_timestamp_seconds": "Unix time the last cycle that discovered storage finished "
    "(the agent's start until one did).",
    "localcsi_agent_resync_seconds": "The agent's --resync-seconds: a cycle is due at least this often.",
    "localcsi_agent_cycle_commands": "Commands the last cycle ran (discovery is 3 however many LVs).",
    "localcsi_agent_cycle_lvm_commands": "lvm2 commands the last cycle ran.",
    "localcsi_agent_orphan_lvs": "LVs with localcsi tags that no LogicalVolume names, at the last cycle.",
}


def _ours(lv: LogicalVolume) -> bool:
    return OWNER_TAG in lv.tags


def _storage_rows(inventory: NodeInventory, spec: StorageSpec, patterns: Sequence[str]) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {name: [] for name in _FAMILIES}
    managed = {vg.name: vg for vg in inventory.vgs if spec.vgs.accepts(vg.name)}
    by_vg: dict[str, list[LogicalVolume]] = {name: [] for name in managed}
    for lv in inventory.lvs:
        if lv.vg in by_vg:
            by_vg[lv.vg].append(lv)
    for name, vg in sorted(managed.items()):
        capacity = vg_capacity(vg, inventory, spec.reserved)
        rows["localcsi_vg_size_bytes"].append(((name,), capacity.total))
        rows["localcsi_vg_free_bytes"].append(((name,), capacity.available))
        rows["localcsi_vg_reserved_bytes"].append(((name,), capacity.reserved))
        rows["localcsi_vg_allocatable_bytes"].append(((name,), capacity.allocatable))
        lvs = by_vg[name]
        rows["localcsi_vg_lvs"].append(((name,), len(lvs)))
        for pool in thin_pools(lvs):
            labels = (name, pool.name)
            rows["localcsi_thin_pool_size_bytes"].append((labels, pool.size_bytes))
            rows["localcsi_thin_pool_virtual_bytes"].append((labels, pool.virtual_bytes))
            rows["localcsi_thin_pool_data_percent"].append((labels, pool.data_percent))
            rows["localcsi_thin_pool_metadata_percent"].append((labels, pool.metadata_percent))
        pools = {lv.name: lv for lv in lvs if lv.is_thin_pool}
        for lv in lvs:
            if not _ours(lv):
                continue
            if lv.is_cow_snapshot:
                rows["localcsi_snapshot_cow_percent"].append(((name, lv.name), lv.data_percent or 0.0))
            abnormal = volume_condition(lv, pools.get(lv.pool_lv) if lv.is_thin_volume else None).abnormal
            rows["localcsi_volume_abnormal"].append(((name, lv.name), 1.0 if abnormal else 0.0))
    # Devices and mount points as the status reports them: on the agent's disks, then as the spec selects.
    scoped = scoped_devices(inventory, patterns)
    free = set(offered_devices(spec, inventory, scoped))
    for device in sorted(scoped, key=lambda d: d.path):
        if spec.devices.accepts(device.name, device.path):
            rows["localcsi_device_size_bytes"].append(((device.path,), device.size_bytes))
            rows["localcsi_device_free"].append(((device.path,), 1.0 if device.path in free else 0.0))
    scoped_paths = {device.path for device in scoped}
    for mount in sorted(inventory.mounts, key=lambda m: m.path):
        if mount.device in scoped_paths and spec.mount_points.accepts(mount.path):
            rows["localcsi_mountpoint_size_bytes"].append(((mount.path,), mount.total_bytes))
            rows["localcsi_mountpoint_available_bytes"].append(((mount.path,), mount.available_bytes))
    return rows


@dataclass(frozen=True)
class _Snapshot:
    families: tuple[TextFamily, ...] = ()
    cycle: dict[str, float] = field(default_factory=dict)


class AgentCollector(Collector):
    """Register once per process; ``record`` after each cycle."""

    def __init__(
        self,
        node: str,
        resync_seconds: float,
        *,
        registry: CollectorRegistry = REGISTRY,
        device_patterns: Sequence[str] = DEFAULT_DEVICE_PATTERNS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.resync_seconds = resync_seconds
        self.device_patterns = tuple(device_patterns)
        self._clock = clock
        self._monotonic = monotonic
        self._started = monotonic()
        self._last_discovered: float | None = None  # monotonic time of the last cycle that discovered
        # The start counts as the last discovery until one happens: an agent that never discovers alerts too.
        started = {
            "localcsi_agent_last_cycle_timestamp_seconds": clock(),
            "localcsi_agent_resync_seconds": resync_seconds,
        }
        self._snapshot = _Snapshot(cycle=started)
        self.cycles = Counter(
            "localcsi_agent_cycles", "Agent cycles by result: ok, discovery_failed, error.", ["node", "result"],
            registry=registry,
        )  # fmt: skip
        self.cycle_seconds = Histogram(
            "localcsi_agent_cycle_duration_seconds", "Time of each agent cycle (discovery, VG init, status, orphans).",
            ["node"], buckets=CYCLE_BUCKETS, registry=registry,
        )  # fmt: skip
        registry.register(self)

    def record(
        self,
        inventory: NodeInventory | None,
        spec: StorageSpec | None,
        *,
        seconds: float,
        commands: int,
        lvm_commands: int,
        orphans: int,
    ) -> None:
        """One finished cycle: ``inventory`` None when discovery failed (the last rows are kept)."""
        self.cycles.labels(self.node, "ok" if inventory is not None else "discovery_failed").inc()
        self.cycle_seconds.labels(self.node).observe(seconds)
        cycle = dict(self._snapshot.cycle)
        cycle |= {
            "localcsi_agent_cycle_commands": commands,
            "localcsi_agent_cycle_lvm_commands": lvm_commands,
            "localcsi_agent_orphan_lvs": orphans,
        }
        families = self._snapshot.families
        if inventory is not None:
            self._last_discovered = self._monotonic()
            cycle["localcsi_agent_last_cycle_timestamp_seconds"] = self._clock()
            rows = _storage_rows(inventory, spec or StorageSpec(), self.device_patterns)
            families = tuple(
                _family(self.node, name, help_text, labels, rows[name])
                for name, (help_text, labels) in _FAMILIES.items()
            )
        self._snapshot = _Snapshot(families, cycle)  # one assignment: a scrape sees one cycle or the next

    def failed(self) -> None:
        """A cycle that raised: counted; the rows of the last good one stay."""
        self.cycles.labels(self.node, "error").inc()

    def stale_reason(self) -> str | None:
        """For /healthz: why the agent is not reporting, or None."""
        since = self._last_discovered if self._last_discovered is not None else self._started
        limit = STALE_PERIODS * self.resync_seconds
        age = self._monotonic() - since
        if age <= limit:
            return None
        what = "no cycle has discovered storage" if self._last_discovered is None else "the last discovery was"
        return f"{what} for {age:.0f}s, more than {STALE_PERIODS} resync periods ({limit:.0f}s)"

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # families vary with the cycle; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily | TextFamily]:
        snapshot = self._snapshot
        node = self.node
        for name, help_text in _CYCLE_FAMILIES.items():
            if name in snapshot.cycle:
                gauge = GaugeMetricFamily(name, help_text, labels=("node",))
                gauge.add_metric((node,), snapshot.cycle[name])
                yield gauge
        yield from snapshot.families


def _family(node: str, name: str, help_text: str, labels: tuple[str, ...], rows: Sequence[Row]) -> TextFamily:
    """A family of the cycle, made once and yielded to every scrape until the next: its text is written
    at the first scrape only (``TextFamily.text``)."""
    series = [(node, *values) for values, _value in rows]
    return TextFamily(name, help_text, "gauge", ("node", *labels), series=series, values=[value for _, value in rows])
