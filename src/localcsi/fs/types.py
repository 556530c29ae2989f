"""What the filesystem adapter reports: probed signatures, mounts, path kinds and usage. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, order=True)
class DeviceNumber:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}:{self.minor}"


@dataclass(frozen=True)
class Signature:
    """What ``blkid -p`` found on a device: a filesystem, a partition table, a RAID or LVM member..."""

    type: str  # TYPE (ext4, xfs, swap, LVM2_member) or PTTYPE (dos, gpt) for a partition table
    usage: str  # USAGE: filesystem, raid, crypto, other; "partition table" for a PTTYPE

    @property
    def is_filesystem(self) -> bool:
        return self.usage == "filesystem"

    def __str__(self) -> str:
        return f"{self.type} ({self.usage})"


class PathKind(StrEnum):
    DIRECTORY = "directory"
    FILE = "file"
    BLOCK_DEVICE = "block device"
    SYMLINK = "symbolic link"
    OTHER = "other"


@dataclass(frozen=True)
class PathInfo:
    kind: PathKind
    # For a block device node (including one bind-mounted over a file): the device it stands for.
    rdev: DeviceNumber | None = None
    size_bytes: int = 0  # st_size: 0 for an empty file (and for a device node)


@dataclass(frozen=True)
class Mount:
    """The topmost mount at a mount point, as findmnt reports it."""

    target: str
    source: str
    fs_type: str
    options: tuple[str, ...]
    device: DeviceNumber  # st_dev of the mounted filesystem (devtmpfs's for a bind-mounted node)

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True)
class FsUsage:
    """statfs of a mounted filesystem, in bytes and inodes."""

    total_bytes: int
    available_bytes: int
    used_bytes: int
    total_inodes: int
    available_inodes: int
    used_inodes: int
