"""A node's storage as the agent sees it: block devices, VGs, mounts; the NodeLocalStorage spec; capacity.

Pure: the agent's discovery adapter builds these values from lsblk, findmnt and one lvm2 report.

Name filters follow the seeds (open-local): ``include`` first picks names, ``exclude`` then drops some;
an empty ``include`` picks nothing. A pattern must match a whole name. Device patterns are tried
against both the kernel name (``vdb``) and the path (``/dev/vdb``), so ``^vd[b-d]$`` and the seeds'
``/dev/vd[a-d]+`` both work.

Capacity per VG: ``reserved = max(size, percent x total)`` over its reservedSpace entries, rounded
up to whole extents; ``allocatable = available - reserved``, never below 0, where ``available`` is
lvm2's vg_free. Space held by any LV, ours or not, is not free, so LVs that are not ours are never
allocatable; ``available`` and ``total`` are exactly what ``vgs`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from localcsi.core.errors import InvalidArgument
from localcsi.core.model import LogicalVolume, PhysicalVolume, VolumeGroup
from localcsi.core.sizes import parse_quantity, round_up

# The seeds' default device pattern (open-local agent --regexp), plus NVMe namespaces. Matched
# against kernel names of whole disks; a disk's partitions come along with it.
DEFAULT_DEVICE_PATTERNS = (r"^(s|v|xv)d[a-z]+$", r"^nvme[0-9]+n[0-9]+$")
DISK = "disk"
PARTITION = "part"


class DiskCondition(StrEnum):
    READY = "DiskReady"
    FULL = "DiskFull"
    FAULT = "DiskFault"


class MediaType(StrEnum):
    SSD = "ssd"
    HDD = "hdd"


@dataclass(frozen=True)
class BlockDevice:
    """A disk or partition from lsblk."""

    name: str  # kernel name: vdb, vdb1, nvme0n1
    path: str  # /dev/vdb
    size_bytes: int
    type: str  # "disk" or "part"
    rotational: bool
    read_only: bool
    parent: str = ""  # kernel name of a partition's disk
    partitions: tuple[str, ...] = ()
    holders: tuple[str, ...] = ()  # device-mapper, md... built on it (not partitions)
    mountpoint: str = ""  # "[SWAP]" for active swap
    fstype: str = ""  # as udev knows it; "" proves nothing: blank-ness is blkid -p's to decide

    @property
    def media_type(self) -> MediaType:
        return MediaType.HDD if self.rotational else MediaType.SSD

    @property
    def in_use(self) -> bool:
        """Partitioned, held, mounted, or formatted as far as udev knows (blkid -p may know more)."""
        return bool(self.partitions or self.holders or self.mountpoint or self.fstype)


@dataclass(frozen=True)
class MountedFilesystem:
    path: str
    device: str
    fs_type: str
    options: tuple[str, ...]
    total_bytes: int
    available_bytes: int
    is_bind: bool

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True)
class NodeInventory:
    devices: tuple[BlockDevice, ...] = ()
    vgs: tuple[VolumeGroup, ...] = ()  # with their PVs attached
    free_pvs: tuple[PhysicalVolume, ...] = ()  # PVs in no VG
    lvs: tuple[LogicalVolume, ...] = ()  # visible LVs only, as `lvs` shows them
    mounts: tuple[MountedFilesystem, ...] = ()

    def device(self, name_or_path: str) -> BlockDevice | None:
        return next((d for d in self.devices if name_or_path in (d.name, d.path)), None)

    def vg(self, name: str) -> VolumeGroup | None:
        return next((vg for vg in self.vgs if vg.name == name), None)

    def pv(self, path: str) -> PhysicalVolume | None:
        pvs = [pv for vg in self.vgs for pv in vg.pvs] + list(self.free_pvs)
        return next((pv for pv in pvs if pv.name == path), None)

    def lvs_of(self, vg: str) -> tuple[LogicalVolume, ...]:
        return tuple(lv for lv in self.lvs if lv.vg == vg)


# -- filters ------------------------------------------------------------------------------------


def compile_patterns(patterns: Iterable[object], what: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidArgument(f"{what}: {pattern!r} is not a regular expression")
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise InvalidArgument(f"{what}: {pattern!r} is not a valid regular expression: {exc}") from None
    return tuple(compiled)


@dataclass(frozen=True)
class NameFilter:
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @staticmethod
    def _hits(patterns: Sequence[re.Pattern[str]], names: Sequence[str]) -> bool:
        return any(pattern.fullmatch(name) for pattern in patterns for name in names)

    def accepts(self, *names: str) -> bool:
        """Whether any of a thing's names is included and none is excluded."""
        return self._hits(self.include, names) and not self._hits(self.exclude, names)


def in_device_scope(device: BlockDevice, disks: Mapping[str, BlockDevice], patterns: Sequence[str]) -> bool:
    """Whether the agent reports ``device``: a disk whose kernel name matches, or a partition of one."""
    if device.type == DISK:
        return any(re.search(pattern, device.name) for pattern in patterns)
    parent = disks.get(device.parent)
    return device.type == PARTITION and parent is not None and in_device_scope(parent, disks, patterns)


# -- the NodeLocalStorage spec ---------------------------------------------------------------------


@dataclass(frozen=True)
class VgToInit:
    name: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class ReservedSpace:
    vg: str
    size_bytes: int = 0
    percent: float = 0.0


@dataclass(frozen=True)
class StorageSpec:
    node_name: str = ""
    devices: NameFilter = NameFilter()
    vgs: NameFilter = NameFilter()
    mount_points: NameFilter = NameFilter()
    vgs_to_init: tuple[VgToInit, ...] = ()
    reserved: tuple[ReservedSpace, ...] = ()
    problems: tuple[str, ...] = ()  # entries that could not be used, each with its reason


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _filter(config: Mapping[str, Any], key: str, problems: list[str]) -> NameFilter:
    section = _dict(config.get(key))
    try:
        return NameFilter(
            compile_patterns(_list(section.get("include")), f"spec.listConfig.{key}.include"),
            compile_patterns(_list(section.get("exclude")), f"spec.listConfig.{key}.exclude"),
        )
    except InvalidArgument as error:
        problems.append(f"{error.message}; nothing is selected from {key} until it is fixed")
        return NameFilter()


def _reserved(entry: Mapping[str, Any], index: int) -> ReservedSpace:
    where = f"spec.reservedSpace[{index}]"
    vg = entry.get("vgName")
    if not isinstance(vg, str) or not vg:
        raise InvalidArgument(f"{where}.vgName is required")
    size = entry.get("size", 0)
    if isinstance(size, str):
        size = parse_quantity(size, key=f"{where}.size")
    percent = entry.get("percent", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidArgument(f"{where}.size must be a byte count or a quantity such as 10Gi, got {size!r}")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise InvalidArgument(f"{where}.percent must be a number from 0 to 100, got {percent!r}")
    return ReservedSpace(vg, size, float(percent))


def parse_spec(spec: Mapping[str, Any]) -> StorageSpec:
    """The fields of a NodeLocalStorage spec the agent acts on; unusable entries become ``problems``."""
    problems: list[str] = []
    listing = _dict(spec.get("listConfig"))
    to_init = _dict(spec.get("resourceToBeInited"))
    vgs: list[VgToInit] = []
    for index, item in enumerate(_list(to_init.get("vgs"))):
        entry = _dict(item)
        name, devices = entry.get("name"), _list(entry.get("devices"))
        if not isinstance(name, str) or not name or not all(isinstance(d, str) and d for d in devices):
            problems.append(f"spec.resourceToBeInited.vgs[{index}] needs a name and a list of device paths")
            continue
        vgs.append(VgToInit(name, tuple(devices)))
    reserved: list[ReservedSpace] = []
    for index, entry in enumerate(_list(spec.get("reservedSpace"))):
        try:
            reserved.append(_reserved(_dict(entry), index))
        except InvalidArgument as error:
            problems.append(f"{error.message}; that entry is ignored")
    return StorageSpec(
        node_name=str(spec.get("nodeName") or ""),
        devices=_filter(listing, "devices", problems),
        vgs=_filter(listing, "vgs", problems),
        mount_points=_filter(listing, "mountPoints", problems),
        vgs_to_init=tuple(vgs),
        reserved=tuple(reserved),
        problems=tuple(problems),
    )


# -- capacity ------------------------------------------------------------------------------------


def reserved_bytes(vg: VolumeGroup, entries: Iterable[ReservedSpace]) -> int:
    """max(size, percent x total) over the VG's entries, rounded up to whole extents, at most the VG."""
    wanted = 0
    for entry in entries:
        if entry.vg == vg.name:
            by_percent = -(-vg.size_bytes * round(entry.percent * 1_000_000) // 100_000_000)
            wanted = max(wanted, entry.size_bytes, by_percent)
    if wanted and vg.extent_size > 0:
        wanted = round_up(wanted, vg.extent_size)
    return min(wanted, vg.size_bytes)


@dataclass(frozen=True)
class VgCapacity:
    total: int
    available: int  # vg_free
    reserved: int
    allocatable: int  # available - reserved, never below 0
    condition: DiskCondition
    reason: str


def vg_capacity(
    vg: VolumeGroup, inventory: NodeInventory, reserved: Iterable[ReservedSpace], full_threshold_bytes: int = 0
) -> VgCapacity:
    held = reserved_bytes(vg, reserved)
    allocatable = max(0, vg.free_bytes - held)
    condition, reason = DiskCondition.READY, ""
    read_only = [pv.name for pv in vg.pvs if (dev := inventory.device(pv.name)) is not None and dev.read_only]
    missing = [pv.name for pv in vg.pvs if pv.missing]
    if vg.partial or missing:
        condition, reason = DiskCondition.FAULT, f"physical volumes missing: {', '.join(missing) or 'unknown'}"
    elif not vg.writable or read_only:
        condition, reason = DiskCondition.FAULT, f"read-only: {', '.join(read_only) or 'the volume group'}"
    elif allocatable < max(vg.extent_size, full_threshold_bytes, 1):
        condition, reason = DiskCondition.FULL, f"{allocatable} bytes left for new volumes after the reserve"
    return VgCapacity(vg.size_bytes, vg.free_bytes, held, allocatable, condition, reason)
