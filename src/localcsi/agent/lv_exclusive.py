"""The agent's Device and MountPoint volumes: a LogicalVolume's plan run with standalone mode's code.

``LocalDevices`` and ``LocalMountPoints`` (``driver/devices.py``, ``driver/mountpoints.py``) pick,
make and wipe exactly as the standalone plugin does; here they see only what this node's
NodeLocalStorage selects (``listConfig.devices``, ``listConfig.mountPoints``: no include, nothing
given), read afresh at every call, so a disk the config does not give is never probed or written.

Both are resumable by name, so a retry after a kill -9 converges to the first attempt's pick: a
Device volume's VG is named after the CSI name (the disk it was made on is found through it), a
MountPoint volume's marker names its LV.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from localcsi.core.errors import Internal
from localcsi.core.exclusive import DISK_KEY
from localcsi.core.model import Volume, volume_from_lv
from localcsi.core.nodestorage import StorageSpec
from localcsi.core.params import MediaType, VolumeType
from localcsi.driver.backend import tag_value, volume_plan
from localcsi.driver.devices import DevicePlan, LocalDevices
from localcsi.driver.mountpoints import LocalMountPoints, MountPointPlan
from localcsi.fs.adapter import Filesystems
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import CommandRunner
from localcsi.resources import logicalvolume as llv


class ExclusiveVolumes:
    """Device and MountPoint volumes of this node, within what its NodeLocalStorage spec selects."""

    def __init__(
        self,
        node: str,
        runner: CommandRunner,
        storage_spec: Callable[[], StorageSpec],
        *,
        lvm: Lvm | None = None,
        devices: LocalDevices | None = None,
        mount_points: LocalMountPoints | None = None,
    ) -> None:
        self.node = node
        self.lvm = lvm or Lvm(runner)

        def device_selected(names: Sequence[str]) -> bool:
            return storage_spec().devices.accepts(*names)

        def mount_point_selected(path: str) -> bool:
            return storage_spec().mount_points.accepts(path)

        self.devices = devices or LocalDevices(runner, node, (), lvm=self.lvm, selects=device_selected)
        self.mount_points = mount_points or LocalMountPoints(Filesystems(runner), node, (), mount_point_selected)

    def create(self, obj: llv.Wire) -> tuple[Volume, str]:
        """Make the resource's volume, or find the first attempt's; the volume and the disk or path taken."""
        data = llv.spec(obj)
        plan = volume_plan(obj)
        if llv.volume_type(obj) is VolumeType.DEVICE:
            media = data.get("mediaType")
            limit = int(data.get("limitBytes") or 0)
            media_type = MediaType(media) if media else None
            volume = self.devices.create(
                DevicePlan(plan.ref, plan.name, plan.requested_bytes, limit, media_type, plan.tags())
            )
            return volume, self._disk(volume)
        mount = MountPointPlan(self.node, plan.name, plan.requested_bytes, int(data.get("limitBytes") or 0),
                               plan.fs_type)  # fmt: skip
        volume = self.mount_points.create(mount)
        found = self.mount_points.find(volume.ref.lv)
        if found is None:
            raise Internal(f"MountPoint volume {volume.id} was made but its marker does not read back")
        return volume, found[0]

    def _disk(self, volume: Volume) -> str:
        named = tag_value(volume.lv.tags, DISK_KEY)
        if named:
            return named
        pvs = self.lvm.list_pvs(volume.ref.vg)
        return os.path.realpath(pvs[0].name) if pvs else ""

    def find(self, obj: llv.Wire) -> Volume | None:
        """The resource's volume as the node has it now (None when it is gone), if it is this one's."""
        at = llv.ref(obj)
        if llv.volume_type(obj) is VolumeType.DEVICE:
            lv = self.lvm.get_lv(at.vg, at.lv)
            volume = volume_from_lv(self.node, lv) if lv is not None else None
        else:
            found = self.mount_points.find(at.lv)
            volume = found[1] if found is not None else None
        return volume if volume is not None and volume.name == llv.spec(obj).get("csiName") else None

    def remove(self, obj: llv.Wire) -> None:
        """Wipe and free the volume's disk or mount point, as standalone mode does. Idempotent.

        A Device volume's VG may outlive its LV after a crash: ``LocalDevices.delete`` finishes it.
        Anything that names another CSI volume is left alone.
        """
        at = llv.ref(obj)
        if llv.volume_type(obj) is VolumeType.DEVICE:
            lv = self.lvm.get_lv(at.vg, at.lv)
            owner = volume_from_lv(self.node, lv) if lv is not None else None
            if lv is not None and (owner is None or owner.name != llv.spec(obj).get("csiName")):
                return
            self.devices.delete(at)
        elif self.find(obj) is not None:
            self.mount_points.delete(at)
