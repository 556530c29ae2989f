"""A node's storage as lvm2 would report it, made up: for metrics tests and benchmarks/bench_metrics.py.

Two managed VGs and the host's own: ``localcsi-thick`` holds linear volumes and thick (copy-on-write)
snapshots, ``localcsi-thin`` a thin pool with thin volumes; ``host`` is full and not selected by the
spec. Volumes carry real localcsi tags (``core.tags.encode_tags``), so they are the driver's.
"""

from __future__ import annotations

from typing import Any

from localcsi.core.model import LogicalVolume, PhysicalVolume, VolumeGroup
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.nodestorage import BlockDevice, MountedFilesystem, NodeInventory
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import LvKind, LvMetadata, encode_tags

THICK_VG = "localcsi-thick"
THIN_VG = "localcsi-thin"
HOST_VG = "host"
THIN_POOL = "pool0"
EXTENT = 4 * MiB
SPEC: dict[str, Any] = {
    "listConfig": {
        "vgs": {"include": ["^localcsi-.+$"]},
        "devices": {"include": ["^/dev/vd[c-z]$"]},
        "mountPoints": {"include": ["^/mnt/.+$"]},
    },
    "reservedSpace": [{"vgName": THICK_VG, "percent": 10}],
}


def _tags(kind: LvKind, name: str, size: int) -> tuple[str, ...]:
    return encode_tags(LvMetadata(kind, name, size))


def _vg(name: str, device: str, size: int, free: int, lv_count: int) -> VolumeGroup:
    pv = PhysicalVolume(device, name, size, free)
    return VolumeGroup(name, size, free, EXTENT, 1, lv_count=lv_count, pvs=(pv,))


def synthetic_inventory(volumes: int, *, pool_data: float = 40.0, pool_metadata: float = 12.5) -> NodeInventory:
    """``volumes`` volumes, half linear (every tenth with a thick snapshot at 30 % COW), half thin."""
    lvs: list[LogicalVolume] = []
    thick, thin = volumes - volumes // 2, volumes // 2
    for index in range(thick):
        name = f"pvc-thick-{index:05d}"
        lv = volume_lv_name(name)
        lvs.append(
            LogicalVolume(THICK_VG, lv, GiB, "-wi-ao----", layout=("linear",), tags=_tags(LvKind.VOLUME, name, GiB))
        )
        if index % 10 == 0:
            snap = f"snapshot-{index:05d}"
            lvs.append(
                LogicalVolume(THICK_VG, snapshot_lv_name(snap), 256 * MiB, "swi-a-s---", layout=("linear",),
                              tags=_tags(LvKind.SNAPSHOT, snap, GiB), origin=lv, data_percent=30.0)
            )  # fmt: skip
    pool_size = max(thin, 1) * GiB
    lvs.append(
        LogicalVolume(THIN_VG, THIN_POOL, pool_size, "twi-aotz--", layout=("thin", "pool"),
                      data_percent=pool_data, metadata_percent=pool_metadata)
    )  # fmt: skip
    for index in range(thin):
        name = f"pvc-thin-{index:05d}"
        lvs.append(
            LogicalVolume(THIN_VG, volume_lv_name(name), 2 * GiB, "Vwi-aotz--", layout=("thin", "sparse"),
                          tags=_tags(LvKind.VOLUME, name, 2 * GiB), pool_lv=THIN_POOL, data_percent=20.0)
        )  # fmt: skip
    thick_used = sum(lv.size_bytes for lv in lvs if lv.vg == THICK_VG)
    thick_size = thick_used + 200 * GiB
    thin_size = pool_size + 100 * GiB
    vgs = (
        _vg(THICK_VG, "/dev/vdc", thick_size, thick_size - thick_used, sum(lv.vg == THICK_VG for lv in lvs)),
        _vg(THIN_VG, "/dev/vdd", thin_size, thin_size - pool_size, sum(lv.vg == THIN_VG for lv in lvs)),
        _vg(HOST_VG, "/dev/vda2", 20 * GiB, 0, 1),
    )
    lvs.append(LogicalVolume(HOST_VG, "root", 20 * GiB, "-wi-ao----", layout=("linear",)))
    devices = (
        BlockDevice("vdc", "/dev/vdc", thick_size, "disk", rotational=False, read_only=False, holders=("dm-0",)),
        BlockDevice("vdd", "/dev/vdd", thin_size, "disk", rotational=False, read_only=False, holders=("dm-1",)),
        BlockDevice("vde", "/dev/vde", 50 * GiB, "disk", rotational=True, read_only=False),
        BlockDevice("vdf", "/dev/vdf", 10 * GiB, "disk", rotational=True, read_only=False, mountpoint="/mnt/data"),
    )
    mounts = (
        MountedFilesystem("/mnt/data", "/dev/vdf", "ext4", ("rw",), 10 * GiB, 4 * GiB, is_bind=False),
        MountedFilesystem("/", "/dev/vda1", "ext4", ("rw",), 8 * GiB, 2 * GiB, is_bind=False),
    )
    return NodeInventory(devices=devices, vgs=vgs, lvs=tuple(lvs), mounts=mounts)
