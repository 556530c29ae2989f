"""Small builders for the scheduling core's tests."""

from __future__ import annotations

from localcsi.core.params import MediaType, VolumeType
from localcsi.core.scheduling import DiskReport, NodeCapacity, NodeReport, VgReport, VolumeRequest, node_capacity
from localcsi.core.scheduling_charges import Charge, Held, assignment
from localcsi.core.sizes import GiB


def cap(*free_gib: float, node: str = "n1", names: tuple[str, ...] = ()) -> NodeCapacity:
    vgs = tuple(
        VgReport(names[i] if names else f"vg{i}", 100 * GiB, int(free * GiB)) for i, free in enumerate(free_gib)
    )
    return node_capacity(NodeReport(node, vgs), [])


def pvc(name: str, gib: float, vg: str | None = None) -> VolumeRequest:
    return VolumeRequest(f"key-{name}", f"PVC ns/{name}", int(gib * GiB), vg_name=vg)


def held(**vg_gib: float) -> Held:
    total = Held()
    total.add(assignment([Charge(f"other-{vg}", vg, int(gib * GiB)) for vg, gib in vg_gib.items()]))
    return total


def disk(name: str, gib: int, media: MediaType | None = None, kind: VolumeType = VolumeType.DEVICE) -> DiskReport:
    return DiskReport(name, kind, gib * GiB, media)


def device(name: str, gib: int, media: MediaType | None = None) -> VolumeRequest:
    return VolumeRequest(f"key-{name}", f"PVC ns/{name}", gib * GiB, VolumeType.DEVICE, media_type=media)


def disk_cap(*disks: DiskReport) -> NodeCapacity:
    return node_capacity(NodeReport("n1", disks=disks), [])
