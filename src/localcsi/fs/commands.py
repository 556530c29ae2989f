"""argv for each filesystem operation. Pure: every path is validated here, before any process runs."""

from __future__ import annotations

from collections.abc import Sequence

from localcsi.core.errors import InvalidArgument
from localcsi.core.params import FsType
from localcsi.fs.parse import STAT_FORMAT, STATFS_FORMAT
from localcsi.fs.paths import validate_mount_flags, validate_path

FINDMNT_COLUMNS = "TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN"


def _fs_type(fs_type: str) -> FsType:
    if fs_type not in set(FsType):
        raise InvalidArgument(f"filesystem {fs_type!r} is not supported; use one of: {', '.join(FsType)}")
    return FsType(fs_type)


def blkid_argv(device: str) -> list[str]:
    # -p: low-level probing, bypassing blkid's cache, which may predate the last mkfs or wipe.
    return ["blkid", "-p", "-o", "export", validate_path(device, "device")]


def mkfs_argv(fs_type: str, device: str, options: Sequence[str] = ()) -> list[str]:
    # Never -F (ext4) or -f (xfs): mkfs's own check for an existing signature stays a second guard.
    return [f"mkfs.{_fs_type(fs_type)}", "-q", *options, validate_path(device, "device")]


def mount_argv(device: str, target: str, fs_type: str, options: Sequence[str] = ()) -> list[str]:
    argv = ["mount", "-t", _fs_type(fs_type)]
    if options:
        argv += ["-o", ",".join(validate_mount_flags(options))]
    return [*argv, validate_path(device, "device"), validate_path(target, "target path")]


def bind_mount_argv(source: str, target: str) -> list[str]:
    return ["mount", "--bind", validate_path(source, "device"), validate_path(target, "target path")]


def remount_read_only_argv(target: str) -> list[str]:
    # A per-mount read-only flag: the filesystem itself (possibly mounted elsewhere) stays as it is.
    return ["mount", "-o", "remount,bind,ro", validate_path(target, "target path")]


def umount_argv(target: str) -> list[str]:
    return ["umount", validate_path(target, "target path")]


def findmnt_argv(target: str) -> list[str]:
    return [
        "findmnt",
        "--json",
        "--list",
        "--output",
        FINDMNT_COLUMNS,
        "--mountpoint",
        validate_path(target, "mount point"),
    ]


def all_mounts_argv() -> list[str]:
    return ["findmnt", "--json", "--list", "--output", FINDMNT_COLUMNS]


def stat_argv(path: str, *, follow: bool = False) -> list[str]:
    # Without -L a symlink shows as one; a node bind-mounted over a file shows as the node.
    return ["stat", *(["-L"] if follow else []), "-c", STAT_FORMAT, validate_path(path, "path")]


def statfs_argv(path: str) -> list[str]:
    return ["stat", "-f", "-c", STATFS_FORMAT, validate_path(path, "path")]


def device_size_argv(device: str) -> list[str]:
    return ["blockdev", "--getsize64", validate_path(device, "device")]


def mkdir_argv(path: str) -> list[str]:
    return ["mkdir", "-p", validate_path(path, "directory")]


def touch_argv(path: str) -> list[str]:
    return ["touch", validate_path(path, "file")]


def rmdir_argv(path: str) -> list[str]:
    return ["rmdir", validate_path(path, "directory")]


def unlink_argv(path: str) -> list[str]:
    return ["unlink", validate_path(path, "file")]


def resize_argv(fs_type: str, device: str, mount_point: str) -> list[str]:
    """Grow a mounted filesystem to its device: resize2fs takes the device, xfs_growfs the mount point."""
    if _fs_type(fs_type) is FsType.EXT4:
        return ["resize2fs", validate_path(device, "device")]
    return ["xfs_growfs", "-d", validate_path(mount_point, "mount point")]
