"""The NodeLocalStorage status the agent writes, in the CRD's layout (seeds 002/004), and change detection.

Every key is always present (lists may be empty): the agent writes with a JSON merge patch, where
a key left out would keep its old value. ``lastUpdateTime`` says when the agent last wrote; it is
the one field that does not count as a change.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localcsi.core.exclusive import is_exclusive_group
from localcsi.core.health import THIN_POOL_FULL_PERCENT, volume_condition
from localcsi.core.model import LogicalVolume, VolumeGroup, thin_pools
from localcsi.core.nodestorage import (
    DISK,
    BlockDevice,
    DiskCondition,
    NodeInventory,
    StorageSpec,
    in_device_scope,
    vg_capacity,
)
from localcsi.core.nodestorage_init import VgInitPlan

READY = "Ready"
DISCOVERED = "Discovered"
VGS_INITIALIZED = "VolumeGroupsInitialized"
UPDATE_ACCEPTED = "accepted"
MAX_CONDITION_MESSAGE = 32768  # metav1.Condition.message
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")


@dataclass(frozen=True)
class ConditionUpdate:
    type: str
    status: bool
    reason: str
    message: str


def _lv_condition(lv: LogicalVolume, lvs: Mapping[str, LogicalVolume]) -> DiskCondition:
    if lv.is_thin_pool and max(lv.data_percent or 0.0, lv.metadata_percent or 0.0) >= THIN_POOL_FULL_PERCENT:
        return DiskCondition.FULL
    pool = lvs.get(lv.pool_lv) if lv.is_thin_volume else None
    return DiskCondition.FAULT if volume_condition(lv, pool).abnormal else DiskCondition.READY


def _device_condition(device: BlockDevice) -> DiskCondition:
    return DiskCondition.FAULT if device.read_only or device.size_bytes <= 0 else DiskCondition.READY


def scoped_devices(inventory: NodeInventory, patterns: Sequence[str]) -> tuple[BlockDevice, ...]:
    disks = {d.name: d for d in inventory.devices if d.type == DISK}
    return tuple(d for d in inventory.devices if in_device_scope(d, disks, patterns))


def offered_devices(spec: StorageSpec, inventory: NodeInventory, scoped: Sequence[BlockDevice]) -> list[str]:
    """filteredStorageInfo.devices: selected by listConfig.devices, and not in use in any way."""
    return sorted(
        d.path for d in scoped if spec.devices.accepts(d.name, d.path) and not d.in_use and inventory.pv(d.path) is None
    )


def _volume_group(
    vg: VolumeGroup, spec: StorageSpec, inventory: NodeInventory, full_threshold_bytes: int
) -> dict[str, Any]:
    capacity = vg_capacity(vg, inventory, spec.reserved, full_threshold_bytes)
    lvs = {lv.name: lv for lv in inventory.lvs_of(vg.name)}
    return {
        "name": vg.name,
        "physicalVolumes": sorted(pv.name for pv in vg.pvs),
        "logicalVolumes": [
            {"name": lv.name, "vgname": vg.name, "total": lv.size_bytes, "condition": str(_lv_condition(lv, lvs))}
            for lv in sorted(lvs.values(), key=lambda v: v.name)
        ],
        "total": capacity.total,
        "available": capacity.available,
        "allocatable": capacity.allocatable,
        "reserved": capacity.reserved,
        "condition": str(capacity.condition),
        # Beyond the seeds' layout, for placement of striped, raid1 and thin volumes.
        "extentSize": vg.extent_size,
        "physicalVolumeInfo": [
            {"name": pv.name, "total": pv.size_bytes, "available": pv.free_bytes}
            for pv in sorted(vg.pvs, key=lambda p: p.name)
        ],
        "thinPools": [
            {
                "name": pool.name,
                "total": pool.size_bytes,
                "dataPercent": pool.data_percent,
                "metadataPercent": pool.metadata_percent,
                "virtual": pool.virtual_bytes,
            }
            for pool in sorted(thin_pools(lvs.values()), key=lambda p: p.name)
        ],
    }


def node_storage_info(
    spec: StorageSpec, inventory: NodeInventory, scoped: Sequence[BlockDevice], full_threshold_bytes: int = 0
) -> dict[str, Any]:
    scoped_paths = {d.path for d in scoped}
    return {
        "deviceInfo": [
            {
                "name": d.path,
                "mediaType": str(d.media_type),
                "readOnly": d.read_only,
                "total": d.size_bytes,
                "condition": str(_device_condition(d)),
            }
            for d in sorted(scoped, key=lambda d: d.path)
        ],
        "volumeGroups": [
            _volume_group(vg, spec, inventory, full_threshold_bytes)
            for vg in sorted(inventory.vgs, key=lambda g: g.name)
        ],
        "mountPoints": [
            {
                "name": m.path,
                "total": m.total_bytes,
                "available": m.available_bytes,
                "fsType": m.fs_type,
                "isBind": m.is_bind,
                "options": list(m.options),
                "device": m.device,
                "readOnly": m.read_only,
                "condition": str(DiskCondition.READY if m.available_bytes > 0 else DiskCondition.FULL),
            }
            for m in sorted(inventory.mounts, key=lambda m: m.path)
            if m.device in scoped_paths
        ],
    }


def filtered_storage_info(spec: StorageSpec, info: Mapping[str, Any], offered: Sequence[str]) -> dict[str, Any]:
    return {
        # A Device volume's VG is one volume's whole disk, never room for LVM volumes.
        "volumeGroups": sorted(
            vg["name"]
            for vg in info["volumeGroups"]
            if spec.vgs.accepts(vg["name"]) and not is_exclusive_group(vg["name"])
        ),
        "devices": list(offered),
        "mountPoints": sorted(m["name"] for m in info["mountPoints"] if spec.mount_points.accepts(m["name"])),
        "updateStatusInfo": {"updateStatus": UPDATE_ACCEPTED},
    }


def summary(info: Mapping[str, Any], filtered: Mapping[str, Any]) -> dict[str, int]:
    """Totals over the filtered VGs, for ``kubectl get nls``."""
    vgs = [vg for vg in info["volumeGroups"] if vg["name"] in set(filtered["volumeGroups"])]
    return {
        "readyVolumeGroups": sum(1 for vg in vgs if vg["condition"] == DiskCondition.READY),
        "total": sum(vg["total"] for vg in vgs),
        "allocatable": sum(vg["allocatable"] for vg in vgs),
    }


def discovered_condition(spec: StorageSpec, inventory: NodeInventory) -> ConditionUpdate:
    summary = f"block devices: {len(inventory.devices)}, volume groups: {len(inventory.vgs)}"
    if spec.problems:
        message = f"{summary}; ignored in the spec: " + "; ".join(spec.problems)
        return ConditionUpdate(DISCOVERED, True, "SpecEntriesIgnored", message)
    return ConditionUpdate(DISCOVERED, True, "Discovered", summary)


def discovery_failed(error: str) -> ConditionUpdate:
    return ConditionUpdate(DISCOVERED, False, "DiscoveryFailed", error)


def init_condition(spec: StorageSpec, plan: VgInitPlan, failures: Mapping[str, str]) -> ConditionUpdate:
    """VolumeGroupsInitialized from the plan and the errors of the creations that were tried."""
    problems = [f"VG {vg}: creating it failed: {error}" for vg, error in sorted(failures.items())]
    problems += [str(refusal) for refusal in plan.refusals]
    if problems:
        reason = "CreateFailed" if failures else "DevicesRefused"
        return ConditionUpdate(VGS_INITIALIZED, False, reason, "; ".join(problems))
    if not spec.vgs_to_init:
        return ConditionUpdate(VGS_INITIALIZED, True, "NothingToInitialize", "spec.resourceToBeInited.vgs is empty")
    names = ", ".join(vg.name for vg in spec.vgs_to_init)
    return ConditionUpdate(VGS_INITIALIZED, True, "Initialized", f"volume groups present: {names}")


def ready_condition(updates: Sequence[ConditionUpdate]) -> ConditionUpdate:
    """Ready: every other condition is True. Its reason is the first failing one's."""
    failing = [u for u in updates if not u.status]
    if failing:
        message = "; ".join(f"{u.type}: {u.message}" for u in failing)
        return ConditionUpdate(READY, False, failing[0].reason, message)
    discovered = next((u.message for u in updates if u.type == DISCOVERED), "storage discovered")
    return ConditionUpdate(READY, True, "StorageDiscovered", discovered)


def merge_conditions(
    previous: Sequence[Mapping[str, Any]], updates: Sequence[ConditionUpdate], now: str, generation: int
) -> list[dict[str, Any]]:
    """metav1.Condition entries; lastTransitionTime moves only when a condition's status changes."""
    old = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    merged = {str(t): dict(c) for t, c in old.items() if t not in {u.type for u in updates}}
    for update in updates:
        if not _REASON.fullmatch(update.reason):
            raise ValueError(f"condition reason {update.reason!r} is not a valid metav1 reason")
        status = "True" if update.status else "False"
        before = old.get(update.type) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        merged[update.type] = {
            "type": update.type,
            "status": status,
            "reason": update.reason,
            "message": update.message[:MAX_CONDITION_MESSAGE],
            "lastTransitionTime": since or now,
            "observedGeneration": generation,
        }
    return [merged[t] for t in sorted(merged)]


def build_status(
    spec: StorageSpec,
    inventory: NodeInventory,
    conditions: Sequence[ConditionUpdate],
    *,
    previous: Mapping[str, Any] | None,
    now: str,
    generation: int,
    patterns: Sequence[str],
    full_threshold_bytes: int = 0,
) -> dict[str, Any]:
    """The whole status; ``conditions`` are Discovered and VolumeGroupsInitialized, Ready is derived."""
    scoped = scoped_devices(inventory, patterns)
    info = node_storage_info(spec, inventory, scoped, full_threshold_bytes)
    filtered = filtered_storage_info(spec, info, offered_devices(spec, inventory, scoped))
    filtered["updateStatusInfo"]["lastUpdateTime"] = now
    updates = [*conditions, ready_condition(conditions)]
    return {
        "nodeStorageInfo": info,
        "filteredStorageInfo": filtered,
        "summary": summary(info, filtered),
        "conditions": merge_conditions((previous or {}).get("conditions") or [], updates, now, generation),
    }


def failed_status(
    previous: Mapping[str, Any] | None, update: ConditionUpdate, now: str, generation: int
) -> dict[str, Any]:
    """Only the conditions, when discovery failed: the last known storage info stays as it was."""
    updates = [update, ready_condition([update])]
    return {"conditions": merge_conditions((previous or {}).get("conditions") or [], updates, now, generation)}


def without_update_time(status: Mapping[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(dict(status))
    filtered = stripped.get("filteredStorageInfo")
    if isinstance(filtered, dict) and isinstance(filtered.get("updateStatusInfo"), dict):
        filtered["updateStatusInfo"].pop("lastUpdateTime", None)
    return stripped


def status_changed(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change what the resource says, lastUpdateTime aside.

    Only the keys the agent writes are compared: others' fields in the status are not its business.
    """
    current = current or {}
    ours = without_update_time(new)
    theirs = without_update_time({key: current.get(key) for key in new})
    return ours != theirs
