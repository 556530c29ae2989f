"""What the filesystem adapter reports: probed signatures, mounts, path kinds and usage. Pure data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


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


class FilesystemOps(Protocol):
    """What the node service needs from the filesystem adapter (``localcsi.fs.adapter.Filesystems``)."""

    def path_info(self, path: str, *, follow: bool = False) -> PathInfo | None: ...
    def find_mount(self, mount_point: str) -> Mount | None: ...
    def list_mounts(self) -> list[Mount]: ...
    def probe(self, device: str) -> Signature | None: ...
    def usage(self, mount_point: str) -> FsUsage: ...
    def device_size(self, device: str) -> int: ...
    def make_filesystem(self, device: str, fs_type: str, options: Sequence[str] = ()) -> None: ...
    def mount(self, device: str, target: str, fs_type: str, options: Sequence[str] = ()) -> None: ...
    def bind_mount(self, source: str, target: str) -> None: ...
    def remount_read_only(self, target: str) -> None: ...
    def unmount(self, target: str) -> bool: ...
    def make_directory(self, path: str) -> None: ...
    def make_file(self, path: str) -> None: ...
    def remove_directory(self, path: str) -> None: ...
    def remove_file(self, path: str) -> None: ...
    def resize(self, fs_type: str, device: str, mount_point: str) -> None: ...
