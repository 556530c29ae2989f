"""Small builders for core model values in tests."""

from __future__ import annotations

from localcsi.core.model import LogicalVolume, PhysicalVolume, ThinPool, VolumeGroup
from localcsi.core.sizes import GiB, MiB

EXTENT = 4 * MiB


def vg(name: str, *pv_free_gib: float, attr: str = "wz--n-", extent: int = EXTENT) -> VolumeGroup:
    pvs = tuple(
        PhysicalVolume(f"/dev/{name}{i}", name, 100 * GiB, int(free * GiB)) for i, free in enumerate(pv_free_gib)
    )
    free = sum(pv.free_bytes for pv in pvs)
    return VolumeGroup(name, 100 * GiB * len(pvs), free, extent, len(pvs), attr=attr, pvs=pvs)


def pool(vg_name: str, size_gib: float, virtual_gib: float, name: str = "localcsi-thinpool") -> ThinPool:
    return ThinPool(vg_name, name, int(size_gib * GiB), 10.0, 5.0, int(virtual_gib * GiB))


def lv(name: str = "csi-0", attr: str = "-wi-a-----", **fields: object) -> LogicalVolume:
    values: dict[str, object] = {"vg": "vg0", "size_bytes": GiB, "layout": ("linear",)}
    values.update(fields)
    return LogicalVolume(name=name, attr=attr, **values)  # type: ignore[arg-type]
