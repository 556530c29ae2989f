"""The agent's metrics: what the last cycle saw, equal to the NodeLocalStorage status it wrote, and a scrape
that only writes out rows (no command, nothing recomputed)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from localcsi.core.model import LogicalVolume
from localcsi.core.nodestorage import parse_spec
from localcsi.core.nodestorage_status import build_status
from localcsi.metrics.agent import AgentCollector
from localcsi.metrics.text import TextFamily, exposition
from localcsi.metrics.volumes import PhaseCollector, VolumeMetrics
from localcsi.testing.synthetic_storage import HOST_VG, SPEC, THICK_VG, THIN_POOL, THIN_VG, synthetic_inventory

pytestmark = pytest.mark.unit

NODE = "node-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def collector(registry: CollectorRegistry, clock: Clock | None = None) -> AgentCollector:
    clock = clock or Clock()
    return AgentCollector(NODE, 60, registry=registry, clock=lambda: 1.7e9 + clock.now, monotonic=clock)


def record(metrics: AgentCollector, volumes: int = 20, **kwargs: Any) -> None:
    inventory = synthetic_inventory(volumes, **kwargs)
    metrics.record(inventory, parse_spec(SPEC), seconds=0.4, commands=3, lvm_commands=1, orphans=2)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"node": NODE, **labels})


def test_vg_capacity_is_what_the_status_says() -> None:
    registry = CollectorRegistry()
    metrics = collector(registry)
    inventory = synthetic_inventory(20)
    metrics.record(inventory, parse_spec(SPEC), seconds=0.4, commands=3, lvm_commands=1, orphans=2)
    status = build_status(
        parse_spec(SPEC), inventory, [], previous=None, now="t", generation=1, patterns=metrics.device_patterns
    )
    reported = {vg["name"]: vg for vg in status["nodeStorageInfo"]["volumeGroups"]}
    for vg in (THICK_VG, THIN_VG):
        assert value(registry, "localcsi_vg_size_bytes", vg=vg) == reported[vg]["total"]
        assert value(registry, "localcsi_vg_free_bytes", vg=vg) == reported[vg]["available"]
        assert value(registry, "localcsi_vg_reserved_bytes", vg=vg) == reported[vg]["reserved"]
        assert value(registry, "localcsi_vg_allocatable_bytes", vg=vg) == reported[vg]["allocatable"]
        assert value(registry, "localcsi_vg_lvs", vg=vg) == len(reported[vg]["logicalVolumes"])
    assert (value(registry, "localcsi_vg_reserved_bytes", vg=THICK_VG) or 0) > 0  # the spec's 10 %
    assert value(registry, "localcsi_vg_size_bytes", vg=HOST_VG) is None, "a VG the spec does not select"
    (pool,) = reported[THIN_VG]["thinPools"]
    labels = {"vg": THIN_VG, "pool": THIN_POOL}
    assert value(registry, "localcsi_thin_pool_data_percent", **labels) == pool["dataPercent"] == 40.0
    assert value(registry, "localcsi_thin_pool_metadata_percent", **labels) == pool["metadataPercent"] == 12.5
    assert value(registry, "localcsi_thin_pool_size_bytes", **labels) == pool["total"]
    assert value(registry, "localcsi_thin_pool_virtual_bytes", **labels) == pool["virtual"]


def test_snapshots_volumes_devices_mount_points_and_the_cycle() -> None:
    registry = CollectorRegistry()
    metrics = collector(registry)
    record(metrics)
    inventory = synthetic_inventory(20)
    snapshots = [lv for lv in inventory.lvs if lv.is_cow_snapshot]
    ours = [lv for lv in inventory.lvs if lv.vg != HOST_VG and lv.tags]
    assert len(snapshots) == 1 and len(ours) == 21
    assert value(registry, "localcsi_snapshot_cow_percent", vg=THICK_VG, lv=snapshots[0].name) == 30.0
    assert [value(registry, "localcsi_volume_abnormal", vg=lv.vg, lv=lv.name) for lv in ours] == [0.0] * 21
    assert value(registry, "localcsi_volume_abnormal", vg=THIN_VG, lv=THIN_POOL) is None, "a pool is no volume"
    assert value(registry, "localcsi_device_free", device="/dev/vde") == 1.0
    assert value(registry, "localcsi_device_free", device="/dev/vdc") == 0.0  # a PV
    assert value(registry, "localcsi_device_size_bytes", device="/dev/vda2") is None  # not in listConfig
    assert value(registry, "localcsi_mountpoint_available_bytes", mountpoint="/mnt/data") == 4 * 1024**3
    assert value(registry, "localcsi_mountpoint_size_bytes", mountpoint="/") is None
    assert value(registry, "localcsi_agent_cycle_commands") == 3
    assert value(registry, "localcsi_agent_cycle_lvm_commands") == 1
    assert value(registry, "localcsi_agent_orphan_lvs") == 2
    assert value(registry, "localcsi_agent_resync_seconds") == 60
    assert value(registry, "localcsi_agent_last_cycle_timestamp_seconds") == 1.7e9 + 1000
    assert value(registry, "localcsi_agent_cycles_total", result="ok") == 1
    assert value(registry, "localcsi_agent_cycle_duration_seconds_sum") == 0.4


def test_a_full_pool_makes_its_thin_volumes_abnormal() -> None:
    registry = CollectorRegistry()
    metrics = collector(registry)
    record(metrics, volumes=4, pool_data=97.0)
    thin = [lv for lv in synthetic_inventory(4).lvs if lv.is_thin_volume]
    assert [value(registry, "localcsi_volume_abnormal", vg=THIN_VG, lv=lv.name) for lv in thin] == [1.0, 1.0]


def test_a_failed_discovery_keeps_the_last_rows_and_the_timestamp() -> None:
    registry, clock = CollectorRegistry(), Clock()
    metrics = collector(registry, clock)
    record(metrics)
    clock.now += 60
    metrics.record(None, None, seconds=0.1, commands=1, lvm_commands=0, orphans=0)
    metrics.failed()
    assert value(registry, "localcsi_vg_size_bytes", vg=THICK_VG) is not None
    assert value(registry, "localcsi_agent_last_cycle_timestamp_seconds") == 1.7e9 + 1000
    assert value(registry, "localcsi_agent_cycles_total", result="discovery_failed") == 1
    assert value(registry, "localcsi_agent_cycles_total", result="error") == 1
    assert value(registry, "localcsi_agent_cycle_commands") == 1


def test_no_resource_yet_reports_no_storage() -> None:
    registry = CollectorRegistry()
    metrics = collector(registry)
    # Until a cycle discovers storage, the start stands for the last discovery (for the not-reporting alert).
    assert value(registry, "localcsi_agent_last_cycle_timestamp_seconds") == 1.7e9 + 1000
    assert value(registry, "localcsi_vg_size_bytes", vg=THICK_VG) is None
    metrics.record(synthetic_inventory(4), None, seconds=0.1, commands=3, lvm_commands=1, orphans=0)
    assert value(registry, "localcsi_vg_size_bytes", vg=THICK_VG) is None
    assert value(registry, "localcsi_agent_last_cycle_timestamp_seconds") is not None


def test_healthz_turns_unhealthy_after_three_resync_periods_without_discovery() -> None:
    clock = Clock()
    metrics = collector(CollectorRegistry(), clock)
    clock.now += 180
    assert metrics.stale_reason() is None
    clock.now += 1
    assert metrics.stale_reason() == "no cycle has discovered storage for 181s, more than 3 resync periods (180s)"
    record(metrics)
    assert metrics.stale_reason() is None
    clock.now += 200
    assert (metrics.stale_reason() or "").startswith("the last discovery was for 200s")


def test_a_scrape_only_writes_the_rows_out(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    metrics = collector(registry)
    record(metrics, volumes=50)
    before = generate_latest(registry)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scrape must not recompute what the cycle saw")

    monkeypatch.setattr("localcsi.metrics.agent._storage_rows", forbidden)
    monkeypatch.setattr(LogicalVolume, "metadata", property(forbidden))
    assert generate_latest(registry) == before


def resource(kind: str, phase: str | None, created: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
    status = {"phase": phase} if phase else {}
    return {"metadata": {"creationTimestamp": created}, "spec": {"kind": kind}, "status": status}


def test_logical_volume_phases_provisioning_time_and_failures() -> None:
    registry = CollectorRegistry()
    cache = {
        "a": resource("Volume", "Ready"),
        "b": resource("Volume", "Ready"),
        "c": resource("Volume", None),
        "d": resource("Snapshot", "Failed"),
    }
    registry.register(PhaseCollector(NODE, lambda: cache))
    volumes = VolumeMetrics(registry, clock=lambda: 1704067212.5)  # 12.5 s after the creationTimestamp
    volumes.ready(NODE, cache["a"])
    volumes.ready(NODE, resource("Volume", "Ready", created="not a time"))
    volumes.failed(NODE, cache["d"], "NOT_FOUND")
    volumes.reconciled(NODE, "retry")
    assert value(registry, "localcsi_logicalvolumes", kind="Volume", phase="Ready") == 2
    assert value(registry, "localcsi_logicalvolumes", kind="Volume", phase="Pending") == 1
    assert value(registry, "localcsi_logicalvolumes", kind="Snapshot", phase="Failed") == 1
    assert value(registry, "localcsi_logicalvolumes", kind="Snapshot", phase="Ready") == 0
    assert value(registry, "localcsi_logicalvolume_provisioning_seconds_count", kind="Volume") == 1
    assert value(registry, "localcsi_logicalvolume_provisioning_seconds_sum", kind="Volume") == 12.5
    assert value(registry, "localcsi_logicalvolume_failures_total", kind="Snapshot", code="NOT_FOUND") == 1
    assert value(registry, "localcsi_logicalvolume_reconciles_total", result="retry") == 1


def test_served_text_is_prometheus_clients_and_written_once_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    metrics = collector(registry)
    record(metrics, volumes=40)
    writes: list[str] = []
    write = TextFamily._write

    def counted(family: TextFamily) -> str:
        writes.append(family.name)
        return write(family)

    monkeypatch.setattr(TextFamily, "_write", counted)
    first = exposition(registry)
    assert exposition(registry) == first
    assert writes and len(writes) == len(set(writes)), "each family of the cycle written once, at the first scrape"
    assert first.decode() == generate_latest(registry).decode(), "byte for byte what prometheus_client writes"
    assert b'localcsi_volume_abnormal{lv="' in first
    record(metrics, volumes=41)
    writes.clear()
    assert exposition(registry) != first, "a new cycle, new text"
    assert writes, "written again for the new cycle"
