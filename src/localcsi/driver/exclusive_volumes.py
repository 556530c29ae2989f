"""The controller's side of exclusive volumes (Device, MountPoint): plans, routing, refusals.

A Device volume's LV is named like any volume's (``volume_lv_name``), in a VG of its own named after
the CSI name (``device_vg_name``), so the driver finds an existing one as it finds any volume, and a
retry after a crash between ``vgcreate`` and ``lvcreate`` finds the VG of the first attempt. A
MountPoint volume's id is ``<node>/localcsi-mountpoint/<lv-style name>``; its record is a marker at
the mount point's root (``driver/mountpoints.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from localcsi.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from localcsi.core.exclusive import device_vg_name, is_device_vg, is_exclusive_group
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.model import Volume
from localcsi.core.names import volume_lv_name
from localcsi.core.params import MediaType, VolumeParams, VolumeType
from localcsi.core.placement import Capacity
from localcsi.core.sizes import capacity_satisfied
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.driver.devices import DevicePlan
from localcsi.driver.mountpoints import MountPointPlan
from localcsi.driver.requests import CreateVolumeRequest


class DeviceBackend(Protocol):
    """Device volumes on the node a plugin serves."""

    def create(self, plan: DevicePlan) -> Volume:
        """Give the volume the smallest fitting free disk, or finish the first attempt; return it ready."""
        ...

    def delete(self, ref: LvRef) -> None:
        """Wipe the volume, remove its VG and blank its disk; nothing to do when its VG is gone."""
        ...

    def capacity(self, media_type: MediaType | None) -> tuple[int, int]:
        """Usable bytes over the free disks, and the largest one."""
        ...


class MountPointBackend(Protocol):
    """MountPoint volumes on the node a plugin serves."""

    def create(self, plan: MountPointPlan) -> Volume: ...

    def delete(self, ref: LvRef) -> None: ...

    def find(self, lv_name: str) -> tuple[str, Volume] | None: ...

    def volumes(self) -> list[Volume]: ...

    def capacity(self) -> tuple[int, int]: ...


def device_plan(
    nodes: Sequence[str], request: CreateVolumeRequest, params: VolumeParams, fs_type: str | None, access: str | None
) -> DevicePlan:
    """The plan of a Device volume on the one node a standalone plugin serves."""
    meta = LvMetadata(LvKind.VOLUME, request.name, request.required_bytes, None, fs_type, access)
    ref = make_ref(_one(nodes), device_vg_name(request.name), volume_lv_name(request.name))
    return DevicePlan(ref, request.name, request.required_bytes, request.limit_bytes, params.media_type,
                      encode_tags(meta))  # fmt: skip


def _one(nodes: Sequence[str]) -> str:
    if len(nodes) != 1:
        raise FailedPrecondition(f"exclusive volumes are provisioned by a plugin serving one node, not {list(nodes)}")
    return nodes[0]


def refuse_exclusive_expansion(ref: LvRef, required_bytes: int) -> None:
    if is_exclusive_group(ref.vg):
        what = "a whole disk (volumeType Device)" if is_device_vg(ref.vg) else "a whole mount point (MountPoint)"
        raise InvalidArgument(f"volume {ref} is {what} and cannot grow to {required_bytes} bytes: its size is fixed")


def refuse_block_mount_point(params: VolumeParams, access: str | None) -> None:
    if params.volume_type is VolumeType.MOUNTPOINT and access != "mount":
        raise InvalidArgument("a MountPoint volume is a directory: it serves filesystem access only, not block")


def refuse_exclusive_source(ref: LvRef, use: str) -> None:
    if is_exclusive_group(ref.vg):
        what = "a whole disk (volumeType Device)" if is_device_vg(ref.vg) else "a whole mount point (MountPoint)"
        raise InvalidArgument(f"volume {ref} is {what}: it cannot be {use}")


class Exclusive(Protocol):
    """Device and MountPoint volumes as the controller driver sees them, in either mode."""

    def create(
        self,
        nodes: Sequence[str],
        request: CreateVolumeRequest,
        params: VolumeParams,
        fs_type: str | None,
        access: str | None,
    ) -> Volume: ...

    def delete(self, nodes: Sequence[str], ref: LvRef) -> None: ...

    def mount_point_volume(self, ref: LvRef) -> Volume: ...

    def volumes(self) -> list[Volume]: ...

    def capacity(self, params: VolumeParams, nodes: Sequence[str], node: str | None = None) -> Capacity: ...


@dataclass
class ExclusiveVolumes:
    """Routes the controller's calls for exclusive volumes; a backend that is None is not served."""

    devices: DeviceBackend | None = None
    mount_points: MountPointBackend | None = None

    def _devices(self) -> DeviceBackend:
        if self.devices is None:
            raise InvalidArgument("volumeType Device is not provisioned here: standalone mode with --device only")
        return self.devices

    def _mount_points(self) -> MountPointBackend:
        if self.mount_points is None:
            raise InvalidArgument(
                "volumeType MountPoint is not provisioned here: standalone mode with --mount-point only"
            )
        return self.mount_points

    def create(
        self,
        nodes: Sequence[str],
        request: CreateVolumeRequest,
        params: VolumeParams,
        fs_type: str | None,
        access: str | None,
    ) -> Volume:
        if params.volume_type is VolumeType.DEVICE:
            return self._devices().create(device_plan(nodes, request, params, fs_type, access))
        refuse_block_mount_point(params, access)
        backend = self._mount_points()
        plan = MountPointPlan(_one(nodes), request.name, request.required_bytes, request.limit_bytes, fs_type)
        volume = backend.create(plan)
        if not capacity_satisfied(volume.size_bytes, request.required_bytes, request.limit_bytes):
            raise AlreadyExists(
                f"volume {request.name!r} already exists as {volume.id}, whose size {volume.size_bytes} does not "
                "fit the requested capacity_range; repeat the original request or use another name"
            )
        return volume

    def delete(self, nodes: Sequence[str], ref: LvRef) -> None:
        if ref.node not in nodes:
            return  # another node's: not ours to touch
        if is_device_vg(ref.vg):  # its VG may outlive the LV after a crash: the devices finish the job
            self._devices().delete(ref)
        else:
            self._mount_points().delete(ref)

    def mount_point_volume(self, ref: LvRef) -> Volume:
        found = self.mount_points.find(ref.lv) if self.mount_points is not None else None
        if found is None or found[1].ref != ref:
            raise NotFound(f"volume {ref} does not exist")
        return found[1]

    def volumes(self) -> list[Volume]:
        """The MountPoint volumes (Device volumes are LVs: the LVM backend lists them)."""
        return self.mount_points.volumes() if self.mount_points is not None else []

    def capacity(self, params: VolumeParams, nodes: Sequence[str], node: str | None = None) -> Capacity:
        """``nodes``: this plugin's node, unless the request's topology names another."""
        del node  # already applied to nodes
        available, largest = 0, 0
        if nodes and params.volume_type is VolumeType.DEVICE and self.devices is not None:
            available, largest = self.devices.capacity(params.media_type)
        elif nodes and params.volume_type is VolumeType.MOUNTPOINT and self.mount_points is not None:
            available, largest = self.mount_points.capacity()
        return Capacity(available_bytes=available, maximum_volume_bytes=largest)
