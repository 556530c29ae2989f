"""NodeLocalStorage status as placement sees it: the node's managed VGs, their PVs and thin pools.

The agent reports everything it finds in ``status.nodeStorageInfo``; only the VGs listed in
``status.filteredStorageInfo.volumeGroups`` are offered. A VG's free space is the smaller of
``available`` (lvm2's free) and ``allocatable`` (free minus the reservation), and the reservation is
taken from the freest PVs first, so striping and raid1 placement never count on reserved space.

Fields beyond the seeds' layout, used when the agent reports them: ``extentSize``,
``physicalVolumeInfo[{name,total,available}]`` (per-PV free space, for striping and raid1) and
``thinPools[{name,total,dataPercent,metadataPercent,virtual}]`` (``virtual``: the sum of the thin
LVs' virtual sizes in the pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from localcsi.core.model import PhysicalVolume, ThinPool, VolumeGroup
from localcsi.driver.backend import NodeStorage
from localcsi.resources.nodelocalstorage import NodeLocalStorageSpec, NodeLocalStorageStatus, VolumeGroupInfo

DEFAULT_EXTENT_BYTES = 4 * 1024 * 1024  # lvm2's default, for an agent that does not report extentSize


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _pvs(vg_name: str, data: VolumeGroupInfo, reserved: int) -> tuple[PhysicalVolume, ...]:
    """The VG's PVs with the reservation taken from the freest ones first (placement never uses it)."""
    details = data.get("physicalVolumeInfo") or []
    pvs = [PhysicalVolume(str(pv.get("name", "")), vg_name, _int(pv.get("total")), _int(pv.get("available")))
           for pv in details]  # fmt: skip
    left = reserved
    shaved: list[PhysicalVolume] = []
    for pv in sorted(pvs, key=lambda pv: -pv.free_bytes):
        cut = min(left, pv.free_bytes)
        left -= cut
        shaved.append(PhysicalVolume(pv.name, pv.vg, pv.size_bytes, pv.free_bytes - cut))
    order = {pv.name: index for index, pv in enumerate(pvs)}
    return tuple(sorted(shaved, key=lambda pv: order[pv.name]))


def _volume_group(data: VolumeGroupInfo) -> VolumeGroup:
    vg_name = str(data["name"])
    available = _int(data.get("available"))
    usable = min(available, _int(data["allocatable"])) if "allocatable" in data else available
    pvs = _pvs(vg_name, data, available - usable)
    writable = data.get("condition", "DiskReady") != "DiskFault"
    return VolumeGroup(
        name=vg_name,
        size_bytes=_int(data.get("total")),
        free_bytes=usable,
        extent_size=_int(data.get("extentSize")) or DEFAULT_EXTENT_BYTES,
        pv_count=len(pvs) or len(data.get("physicalVolumes") or []) or 1,
        attr="wz--n-" if writable else "r---p-",
        pvs=pvs,
    )


def _thin_pools(vg_name: str, data: VolumeGroupInfo) -> tuple[ThinPool, ...]:
    pools = data.get("thinPools") or []
    return tuple(
        ThinPool(
            vg=vg_name,
            name=str(pool["name"]),
            size_bytes=_int(pool.get("total")),
            data_percent=float(pool.get("dataPercent") or 0.0),
            metadata_percent=float(pool.get("metadataPercent") or 0.0),
            virtual_bytes=_int(pool.get("virtual")),
        )
        for pool in pools
        if pool.get("name")
    )


def node_storage(nls: Mapping[str, Any]) -> NodeStorage:
    """The VGs and thin pools a NodeLocalStorage's status offers: only the filtered (managed) VGs."""
    node = str(cast(NodeLocalStorageSpec, nls.get("spec") or {}).get("nodeName") or nls["metadata"]["name"])
    data = cast(NodeLocalStorageStatus, nls.get("status") or {})
    managed = set((data.get("filteredStorageInfo") or {}).get("volumeGroups") or [])
    groups = (data.get("nodeStorageInfo") or {}).get("volumeGroups") or []
    chosen = [group for group in groups if group.get("name") in managed]
    vgs = tuple(_volume_group(group) for group in chosen)
    pools = tuple(pool for group in chosen for pool in _thin_pools(str(group["name"]), group))
    return NodeStorage(node, vgs, pools)
