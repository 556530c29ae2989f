"""Exclusive volumes (volumeType Device): names, tags, which disk a volume may get, and its usable size.

A Device volume is a VG on one whole disk with one LV spanning it. The VG is named after the CSI
name (``localcsi-dev-<hash>``), so a retried create finds the first attempt's VG even before its LV
exists, and a volume id (``node/vg/lv``) names the disk's VG without any side record. The owner
record (LV tags) lives in LVM metadata, which a block-mode pod cannot reach: it owns every byte of
the LV, not the disk's first MiB.

Pure: no commands. ``driver/devices.py`` reads the disks and carries the decisions out.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from localcsi.core.errors import InvalidArgument, ResourceExhausted
from localcsi.core.names import validate_csi_name, validate_vg_name
from localcsi.core.params import MediaType
from localcsi.core.sizes import MiB, format_bytes, round_down

DEVICE_VG_PREFIX = "localcsi-dev-"
_VG_HASH_HEX_DIGITS = 20  # 80 bits: one disk per volume, a few hundred disks per node at most
# lvm2's defaults for a PV made by vgcreate: data starts 1 MiB in, 4 MiB extents. Measured in the
# node VM (docs/exclusive-volumes.md): a 1 GiB disk gives a 1020 MiB LV.
PE_START_BYTES = MiB
EXTENT_BYTES = 4 * MiB
# Zeroed at both ends of a disk when a Device volume is deleted, beyond wipefs: labels and partition
# tables (GPT keeps a copy in the last sectors) are gone, so the disk is blank for the next claim.
ZEROED_END_BYTES = MiB

# LV tag keys (localcsi.io/<key>=<value>) of a Device volume.
VOLUME_TYPE_KEY = "volumeType"
DISK_KEY = "disk"  # the disk's stable path (/dev/disk/by-id/...) or, without one, its kernel path
_TAG_VALUE = re.compile(r"[A-Za-z0-9_+.\-/=!:&#]{1,900}")


def device_vg_name(csi_name: str) -> str:
    """The VG of a Device volume: derived from the CSI name, so a retry finds it."""
    validate_csi_name(csi_name)
    digest = hashlib.sha256(csi_name.encode("utf-8")).hexdigest()
    return validate_vg_name(DEVICE_VG_PREFIX + digest[:_VG_HASH_HEX_DIGITS])


def is_device_vg(vg_name: str) -> bool:
    return vg_name.startswith(DEVICE_VG_PREFIX)


def usable_bytes(disk_bytes: int) -> int:
    """The LV size a whole disk gives: after lvm2's label and metadata, in whole extents."""
    return max(0, round_down(disk_bytes - PE_START_BYTES, EXTENT_BYTES))


def disk_tag_value(path: str) -> str | None:
    """``path`` as an lvm2 tag value, or None when it holds characters a tag cannot."""
    return path if _TAG_VALUE.fullmatch(path) else None


@dataclass(frozen=True)
class Disk:
    """A whole disk on this node, as seen for Device volumes."""

    path: str  # kernel path, /dev/vdb
    size_bytes: int
    rotational: bool
    stable_paths: tuple[str, ...] = ()  # /dev/disk/by-id/... links to it
    owner_vg: str = ""  # a Device volume's VG on it
    problem: str = ""  # why it is not free (signature, partitions, holders, mount, not whole...)

    @property
    def media_type(self) -> MediaType:
        return MediaType.HDD if self.rotational else MediaType.SSD

    @property
    def name(self) -> str:
        """The disk's most stable name: its first by-id link, else its kernel path."""
        return self.stable_paths[0] if self.stable_paths else self.path

    @property
    def usable_bytes(self) -> int:
        return usable_bytes(self.size_bytes)

    @property
    def free(self) -> bool:
        return not self.owner_vg and not self.problem


def selected(disk_paths: Iterable[str], patterns: Sequence[str]) -> bool:
    """Whether any of a disk's paths (kernel path, by-id links) matches one of the glob patterns."""
    return any(fnmatch.fnmatchcase(path, pattern) for path in disk_paths for pattern in patterns)


def validate_device_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    for pattern in patterns:
        if not pattern.startswith("/dev/"):
            raise InvalidArgument(f"device pattern {pattern!r} must be a glob of paths under /dev/")
    return tuple(patterns)


def choose_disk(disks: Sequence[Disk], required_bytes: int, limit_bytes: int, media_type: MediaType | None) -> Disk:
    """The smallest free disk whose usable size is at least ``required_bytes`` (and at most
    ``limit_bytes`` when set), of ``media_type`` when given; RESOURCE_EXHAUSTED with every reason."""
    fitting = [
        disk
        for disk in disks
        if disk.free
        and disk.usable_bytes >= max(required_bytes, 1)
        and (not limit_bytes or disk.usable_bytes <= limit_bytes)
        and (media_type is None or disk.media_type is media_type)
    ]
    if fitting:
        return min(fitting, key=lambda disk: (disk.usable_bytes, disk.path))
    media = f" {media_type}" if media_type is not None else ""
    limit = f" and at most {format_bytes(limit_bytes)}" if limit_bytes else ""
    seen = "; ".join(_describe(disk) for disk in disks) or "no disk is given to Device volumes on this node"
    raise ResourceExhausted(f"no free{media} disk of at least {format_bytes(required_bytes)}{limit} usable ({seen})")


def _describe(disk: Disk) -> str:
    state = f"volume group {disk.owner_vg}" if disk.owner_vg else (disk.problem or "free")
    return f"{disk.name}: {format_bytes(disk.usable_bytes)} usable, {disk.media_type}, {state}"


# -- MountPoint volumes ---------------------------------------------------------------------------

# The id of a MountPoint volume is <node>/localcsi-mountpoint/<lv-style name>: the middle part is no
# VG (the name is reserved: a VG of that name is never offered), it says "look in the mount points".
MOUNTPOINT_GROUP = "localcsi-mountpoint"
# At a mount point's root: the marker that it is taken (out of the pod's view), and the directory the
# pod gets (bind-mounted).
OWNER_MARKER = ".localcsi-owner"
VOLUME_DIR = "localcsi-volume"
# What a fresh filesystem holds at its root and still counts as empty.
EMPTY_ROOT_ENTRIES = frozenset({"lost+found"})


def is_mountpoint_group(name: str) -> bool:
    return name == MOUNTPOINT_GROUP


def is_exclusive_group(name: str) -> bool:
    """A Device volume's VG or the MountPoint volumes' id part: never a VG for LVM volumes."""
    return is_device_vg(name) or is_mountpoint_group(name)


@dataclass(frozen=True)
class MountPointInfo:
    """A mount point selected for MountPoint volumes."""

    path: str
    total_bytes: int
    owner: str = ""  # the LV-style name of the volume that holds it (from its marker)
    problem: str = ""  # why it is not free: not empty, unreadable marker...

    @property
    def free(self) -> bool:
        return not self.owner and not self.problem


def choose_mount_point(points: Sequence[MountPointInfo], required_bytes: int, limit_bytes: int) -> MountPointInfo:
    """The smallest free mount point of at least ``required_bytes`` (at most ``limit_bytes`` if set)."""
    fitting = [
        point
        for point in points
        if point.free and point.total_bytes >= required_bytes and (not limit_bytes or point.total_bytes <= limit_bytes)
    ]
    if fitting:
        return min(fitting, key=lambda point: (point.total_bytes, point.path))
    states = "; ".join(
        f"{p.path}: {format_bytes(p.total_bytes)}, {('held by ' + p.owner) if p.owner else (p.problem or 'free')}"
        for p in points
    )
    raise ResourceExhausted(
        f"no free mount point of at least {format_bytes(required_bytes)} "
        f"({states or 'no mount point is given to MountPoint volumes on this node'})"
    )
