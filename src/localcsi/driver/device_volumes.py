"""The controller's side of Device volumes: the plan for one, and what a whole disk cannot do.

A Device volume's LV is named like any volume's (``volume_lv_name``), in a VG of its own named after
the CSI name (``device_vg_name``), so the driver finds an existing one as it finds any volume, and a
retry after a crash between ``vgcreate`` and ``lvcreate`` finds the VG of the first attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from localcsi.core.errors import FailedPrecondition, InvalidArgument
from localcsi.core.exclusive import device_vg_name, is_device_vg
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.model import Volume
from localcsi.core.names import volume_lv_name
from localcsi.core.params import MediaType, VolumeParams
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.driver.devices import DevicePlan
from localcsi.driver.requests import CreateVolumeRequest


class DeviceBackend(Protocol):
    """Device volumes on the nodes of a backend."""

    def create(self, plan: DevicePlan) -> Volume:
        """Give the volume the smallest fitting free disk, or finish the first attempt; return it ready."""
        ...

    def delete(self, ref: LvRef) -> None:
        """Wipe the volume, remove its VG and blank its disk; nothing to do when its VG is gone."""
        ...

    def capacity(self, media_type: MediaType | None) -> tuple[int, int]:
        """Usable bytes over the free disks, and the largest one."""
        ...


def device_plan(
    nodes: Sequence[str], request: CreateVolumeRequest, params: VolumeParams, fs_type: str | None, access: str | None
) -> DevicePlan:
    """The plan of a Device volume on the one node a standalone plugin serves."""
    if len(nodes) != 1:
        raise FailedPrecondition(f"Device volumes are provisioned by a plugin serving one node, not {list(nodes)}")
    meta = LvMetadata(LvKind.VOLUME, request.name, request.required_bytes, None, fs_type, access)
    ref = make_ref(nodes[0], device_vg_name(request.name), volume_lv_name(request.name))
    return DevicePlan(ref, request.name, request.required_bytes, request.limit_bytes, params.media_type,
                      encode_tags(meta))  # fmt: skip


def refuse_device_expansion(ref: LvRef, required_bytes: int) -> None:
    if is_device_vg(ref.vg):
        raise InvalidArgument(
            f"volume {ref} is a whole disk (volumeType Device) and cannot grow to {required_bytes} bytes; "
            "a disk has a fixed size"
        )


def refuse_device_snapshot(ref: LvRef) -> None:
    if is_device_vg(ref.vg):
        raise InvalidArgument(
            f"volume {ref} is a whole disk (volumeType Device): it has no room for a snapshot, and none can be taken"
        )
