"""Parsers for the output of blkid, findmnt and stat. Pure; malformed output raises Internal."""

from __future__ import annotations

import json
import re

from localcsi.core.errors import Internal
from localcsi.fs.types import DeviceNumber, FsUsage, Mount, PathInfo, PathKind, Signature

_ESCAPE = re.compile(r"\\(.)")
_STAT_KINDS = {
    "directory": PathKind.DIRECTORY,
    "regular file": PathKind.FILE,
    "regular empty file": PathKind.FILE,
    "block special file": PathKind.BLOCK_DEVICE,
    "symbolic link": PathKind.SYMLINK,
}
STAT_FORMAT = "%F|%t|%T|%s"
STATFS_FORMAT = "%S %b %f %a %c %d"
PARTITION_TABLE = "partition table"


def _malformed(what: str, output: str) -> Internal:
    return Internal(f"cannot parse the output of {what}: {output[:300]!r}")


def parse_blkid_export(stdout: str) -> Signature:
    """``blkid -p -o export`` output for a device it found something on (exit status 0)."""
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = _ESCAPE.sub(r"\1", value)
    if "TYPE" in values:
        return Signature(values["TYPE"], values.get("USAGE", "unknown"))
    if "PTTYPE" in values:
        return Signature(values["PTTYPE"], PARTITION_TABLE)
    # blkid said it found something but did not name it: still a signature, never format over it.
    found = sorted(set(values) - {"DEVNAME"})
    return Signature("unknown", ",".join(found) or "unknown")


def parse_findmnt(stdout: str) -> Mount | None:
    """``findmnt --json --list`` output: the last (topmost) mount listed, or None for no rows."""
    mounts = parse_findmnt_all(stdout)
    return mounts[-1] if mounts else None


def parse_findmnt_all(stdout: str) -> list[Mount]:
    """``findmnt --json --list`` output: every mount listed, in order."""
    try:
        mounts = []
        for row in json.loads(stdout)["filesystems"]:
            major, minor = str(row["maj:min"]).split(":")
            mounts.append(
                Mount(
                    target=str(row["target"]),
                    source=str(row["source"]),
                    fs_type=str(row["fstype"]),
                    options=tuple(option for option in str(row["options"] or "").split(",") if option),
                    device=DeviceNumber(int(major), int(minor)),
                )
            )
        return mounts
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise _malformed("findmnt", stdout) from None


def parse_stat(stdout: str) -> PathInfo:
    """``stat -c STAT_FORMAT`` output: the kind of a path, and the device a block node stands for."""
    try:
        kind_name, major, minor, size = stdout.strip().split("|")
        kind = _STAT_KINDS.get(kind_name, PathKind.OTHER)
        rdev = DeviceNumber(int(major, 16), int(minor, 16)) if kind is PathKind.BLOCK_DEVICE else None
        return PathInfo(kind=kind, rdev=rdev, size_bytes=int(size))
    except ValueError:
        raise _malformed("stat", stdout) from None


def parse_statfs(stdout: str) -> FsUsage:
    """``stat -f -c STATFS_FORMAT`` output: fragment size, blocks total/free/available, inodes total/free."""
    try:
        fragment, blocks, free, available, inodes, free_inodes = (int(word) for word in stdout.split())
    except ValueError:
        raise _malformed("stat -f", stdout) from None
    return FsUsage(
        total_bytes=blocks * fragment,
        available_bytes=available * fragment,
        used_bytes=(blocks - free) * fragment,
        total_inodes=inodes,
        available_inodes=free_inodes,
        used_inodes=inodes - free_inodes,
    )


def parse_size(stdout: str) -> int:
    """``blockdev --getsize64`` output."""
    try:
        return int(stdout.strip())
    except ValueError:
        raise _malformed("blockdev --getsize64", stdout) from None
