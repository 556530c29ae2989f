"""Device volumes on this node: which whole disks are free, and making or tearing down a volume's VG.

Only disks selected by the device patterns (``--device`` in standalone mode; the NodeLocalStorage's
``listConfig.devices`` for the agent in cluster mode) are ever looked at or touched. A disk is free
only when lsblk shows no partition, holder or mount on it, lvm2 knows no PV on it, and ``blkid -p``
finds no signature at all; the probe runs again right before ``vgcreate``, and ``vgcreate`` itself
(stdin is /dev/null) answers "no" to lvm2's own prompt about a signature.

Create: ``vgcreate`` (which makes the PV) with our tag and the disk's stable name, then one LV over
every extent. Delete: zero the LV (``blockdev.wipe``), ``lvremove``, ``pvremove -ff`` (the VG goes
with its only PV's label in one step, so no crash leaves a PV in no VG that nobody owns), ``wipefs
-a``, then zero the first and last MiB: the disk is blank again and the next tenant reads zeroes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from localcsi.core.errors import AlreadyExists, CoreError, FailedPrecondition, Internal, NotFound
from localcsi.core.exclusive import (
    DISK_KEY,
    VOLUME_TYPE_KEY,
    ZEROED_END_BYTES,
    Disk,
    choose_disk,
    disk_tag_value,
    is_device_vg,
    selected,
)
from localcsi.core.ids import LvRef
from localcsi.core.model import LogicalVolume, Volume, VolumeGroup, volume_from_lv
from localcsi.core.names import validate_lv_name, validate_vg_name
from localcsi.core.nodestorage import DISK, BlockDevice
from localcsi.core.params import LvmType, MediaType, VolumeType
from localcsi.core.placement import Placement
from localcsi.core.tags import OWNER_TAG
from localcsi.driver.blockdev import LocalBlockDevices
from localcsi.fs.adapter import Filesystems
from localcsi.fs.block_devices import lsblk_argv, parse_lsblk, read_rotational
from localcsi.fs.paths import validate_path
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import CommandRunner

log = logging.getLogger(__name__)

BY_ID = Path("/dev/disk/by-id")
_PREFIX = OWNER_TAG + "/"


def vgcreate_argv(vg: str, disk: str, tags: Sequence[str]) -> list[str]:
    argv = ["vgcreate"]
    for tag in (OWNER_TAG, *tags):
        argv += ["--addtag", tag]
    return [*argv, validate_vg_name(vg), validate_path(disk, "disk")]


def pvremove_argv(disk: str) -> list[str]:
    # -ff: the PV still belongs to the (now empty) VG; its label and the VG go in one step.
    return ["pvremove", "-ff", "-y", validate_path(disk, "disk")]


def wipefs_argv(disk: str) -> list[str]:
    return ["wipefs", "-a", validate_path(disk, "disk")]


class DiskBlocks(Protocol):
    def wipe(self, path: str) -> None: ...
    def zero_ends(self, path: str, length: int) -> None: ...


@dataclass(frozen=True)
class DevicePlan:
    """A Device volume to create on this node."""

    ref: LvRef  # node, the volume's own VG, the LV
    name: str  # the CSI name
    required_bytes: int
    limit_bytes: int
    media_type: MediaType | None
    tags: tuple[str, ...]  # the LV's standard tags (name, size, fstype, access...)


def device_tags(disk: Disk) -> tuple[str, ...]:
    tags = [f"{_PREFIX}{VOLUME_TYPE_KEY}={VolumeType.DEVICE}"]
    value = disk_tag_value(disk.name) or disk_tag_value(disk.path)
    if value:
        tags.append(f"{_PREFIX}{DISK_KEY}={value}")
    return tuple(tags)


def stable_links(by_id: Path = BY_ID) -> dict[str, list[str]]:
    """Kernel path -> its /dev/disk/by-id links (sorted); empty where udev made none."""
    links: dict[str, list[str]] = {}
    try:
        entries = sorted(by_id.iterdir())
    except OSError:
        return links
    for entry in entries:
        target = os.path.realpath(entry)
        links.setdefault(target, []).append(str(entry))
    return links


def _problem(device: BlockDevice) -> str:
    if device.read_only:
        return "read-only"
    if device.partitions:
        return f"has partitions {', '.join(device.partitions)}"
    if device.holders:
        return f"held by {', '.join(device.holders)}"
    if device.mountpoint:
        return f"mounted at {device.mountpoint}"
    return ""


class LocalDevices:
    """The disks of this node that Device volumes may use, and their volumes' VGs."""

    def __init__(
        self,
        runner: CommandRunner,
        node: str,
        patterns: Sequence[str],
        *,
        lvm: Lvm | None = None,
        blocks: DiskBlocks | None = None,
        on_change: Callable[[], None] = lambda: None,
        sys_block: Path = Path("/sys/block"),
        by_id: Path = BY_ID,
        selects: Callable[[Sequence[str]], bool] | None = None,
    ) -> None:
        self.runner = runner
        self.node = node
        self.patterns = tuple(patterns)
        # Instead of the globs: the agent's listConfig.devices, given the kernel name, path and links.
        self.selects = selects
        self.lvm = lvm or Lvm(runner)
        self.fs = Filesystems(runner)
        self.blocks: DiskBlocks = blocks or LocalBlockDevices()
        self.on_change = on_change  # e.g. the LVM backend's cached view, which lists this volume's LV
        self.sys_block = sys_block
        self.by_id = by_id
        # Choosing a disk and vgcreate on it are one step: two creates must not pick the same disk.
        self._taking = threading.Lock()

    # -- the inventory ----------------------------------------------------------------------------

    def disks(self) -> list[Disk]:
        """Every selected whole disk, with the Device volume's VG on it or why it is not free."""
        if not self.patterns and self.selects is None:
            return []
        links = stable_links(self.by_id)
        owners = {os.path.realpath(pv.name): pv.vg for pv in self.lvm.list_pvs()}
        devices = parse_lsblk(self.runner.run(lsblk_argv()).stdout, read_rotational(self.sys_block))
        disks = []
        for device in devices:
            paths = links.get(device.path, [])
            if device.type != DISK or not self._selected(device, paths):
                continue
            disks.append(self._disk(device, tuple(paths), owners))
        return disks

    def _selected(self, device: BlockDevice, links: Sequence[str]) -> bool:
        if self.selects is not None:
            return self.selects([device.name, device.path, *links])
        return selected([device.path, *links], self.patterns)

    def _disk(self, device: BlockDevice, paths: tuple[str, ...], owners: dict[str, str]) -> Disk:
        base = Disk(device.path, device.size_bytes, device.rotational, paths)
        vg = owners.get(device.path)
        if vg is not None and is_device_vg(vg):
            return Disk(base.path, base.size_bytes, base.rotational, paths, owner_vg=vg)
        problem = _problem(device)
        if not problem and vg is not None:
            problem = f"an LVM PV of {vg}" if vg else "an LVM PV in no volume group"
        if not problem:
            problem = self._signature(device.path)
        return Disk(base.path, base.size_bytes, base.rotational, paths, problem=problem)

    def _signature(self, path: str) -> str:
        try:
            signature = self.fs.probe(path)
        except CoreError as error:
            return f"cannot be probed: {error.message}"
        return f"blkid finds {signature} on it" if signature is not None else ""

    # -- create -----------------------------------------------------------------------------------

    def create(self, plan: DevicePlan) -> Volume:
        """Make the volume, or finish making it (a VG of its name may exist from an earlier attempt)."""
        vg, lv_name = plan.ref.vg, validate_lv_name(plan.ref.lv)
        if not is_device_vg(vg):
            raise Internal(f"{vg} is not a Device volume's volume group name")
        group = self._group(vg)
        if group is None:
            with self._taking:
                group = self._group(vg)  # a retry of the same name may have made it meanwhile
                disk = self._take_disk(plan) if group is None else None
            group = self._group(vg)
            if group is None:
                raise Internal(f"vgcreate {vg} on {disk.path if disk else '?'} succeeded but vgs does not show it")
        lv = self.lvm.get_lv(vg, lv_name)
        if lv is None:
            pv_paths = [os.path.realpath(pv.name) for pv in self.lvm.list_pvs(vg)]
            disk_tags = device_tags(self._disk_at(pv_paths))
            placement = Placement(vg, group.free_bytes, LvmType.LINEAR)
            with contextlib.suppress(AlreadyExists):  # made meanwhile: read it back
                self.lvm.create_lv(LvSpec.for_placement(placement, lv_name, (*plan.tags, *disk_tags)))
            self.on_change()
            lv = self.lvm.get_lv(vg, lv_name)
        if lv is None:
            raise Internal(f"{vg}/{lv_name} was created but lvs does not show it")
        return self._volume(lv)

    def _group(self, vg: str) -> VolumeGroup | None:
        try:
            groups = self.lvm.list_vgs(vg)
        except NotFound:
            return None
        return next((group for group in groups if group.name == vg), None)

    def _disk_at(self, paths: Sequence[str]) -> Disk:
        links = stable_links(self.by_id)
        path = paths[0] if paths else ""
        return Disk(path, 0, False, tuple(links.get(path, [])))

    def _take_disk(self, plan: DevicePlan) -> Disk:
        disk = choose_disk(self.disks(), plan.required_bytes, plan.limit_bytes, plan.media_type)
        again = self._signature(disk.path)  # right before writing: nothing may have appeared since
        if again:
            raise FailedPrecondition(f"{disk.name} ({disk.path}) is no longer blank: {again}; retry")
        vg_tags = [tag for tag in device_tags(disk) if DISK_KEY in tag]
        self.runner.run(vgcreate_argv(plan.ref.vg, disk.path, vg_tags))
        log.info("Device volume %s takes disk %s (%s)", plan.name, disk.name, disk.path)
        return disk

    def _volume(self, lv: LogicalVolume) -> Volume:
        volume = volume_from_lv(self.node, lv)
        if volume is None:
            raise Internal(f"{lv.vg}/{lv.name} does not read back as a volume: {lv.tags}")
        return volume

    # -- delete -----------------------------------------------------------------------------------

    def delete(self, ref: LvRef) -> None:
        """Wipe and remove the volume and its VG, and leave its disk blank. Idempotent."""
        vg = validate_vg_name(ref.vg)
        if not is_device_vg(vg):
            raise Internal(f"{vg} is not a Device volume's volume group name")
        if self._group(vg) is None:
            return
        lv = self.lvm.get_lv(vg, ref.lv)
        if lv is not None:
            if lv.is_open:
                raise FailedPrecondition(f"{vg}/{lv.name} is open (mounted or in use); unpublish it first")
            if not lv.is_active:
                self.lvm.activate(vg, lv.name)
            self.blocks.wipe(lv.device_path)
            self.lvm.remove_lv(vg, lv.name, known=lv)
            self.on_change()
        others = [other.name for other in self.lvm.list_lvs(vg)]
        if others:
            raise FailedPrecondition(f"volume group {vg} still holds {others}; remove them by hand first")
        disks = [os.path.realpath(pv.name) for pv in self.lvm.list_pvs(vg)]
        for disk in disks:
            self.runner.run(pvremove_argv(disk))
            self.runner.run(wipefs_argv(disk))
            self.blocks.zero_ends(disk, ZEROED_END_BYTES)
            log.info("disk %s of %s is blank again", disk, ref)

    def capacity(self, media_type: MediaType | None) -> tuple[int, int]:
        """Usable bytes over the free disks of ``media_type`` (any when None), and the largest."""
        sizes = [d.usable_bytes for d in self.disks() if d.free and media_type in (None, d.media_type)]
        return sum(sizes), max(sizes, default=0)
