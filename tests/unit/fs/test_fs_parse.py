"""Parsing what blkid, findmnt, stat and blockdev print (samples taken from the node VM)."""

from __future__ import annotations

import json

import pytest

from localcsi.core.errors import Internal
from localcsi.fs.parse import parse_blkid_export, parse_findmnt, parse_size, parse_stat, parse_statfs
from localcsi.fs.types import DeviceNumber, FsUsage, Mount, PathInfo, PathKind, Signature

pytestmark = pytest.mark.unit

BLKID_EXT4 = """DEVNAME=/dev/localcsi-t/a
UUID=35c393f0-ec89-46d1-ad6c-e1d83d35e38c
VERSION=1.0
BLOCK_SIZE=1024
TYPE=ext4
USAGE=filesystem
"""
BLKID_PV = """DEVNAME=/dev/vdb
UUID=29MdJj-mSTs-2Guu-3XzT-JUKp-Anuk-6OYpxo
VERSION=LVM2\\ 001
TYPE=LVM2_member
USAGE=raid
"""
FINDMNT_FS = """{
   "filesystems": [
      {
         "target": "/t/fs",
         "source": "/dev/mapper/localcsi--t-a",
         "fstype": "ext4",
         "options": "rw,noatime",
         "maj:min": "253:0"
      }
   ]
}
"""


@pytest.mark.parametrize(
    ("stdout", "signature"),
    [
        (BLKID_EXT4, Signature("ext4", "filesystem")),
        (BLKID_PV, Signature("LVM2_member", "raid")),
        ("DEVNAME=/dev/x\nUUID=1\nTYPE=swap\nUSAGE=other\n", Signature("swap", "other")),
        ("DEVNAME=/dev/x\nPTUUID=9c1b\nPTTYPE=gpt\n", Signature("gpt", "partition table")),
        ("DEVNAME=/dev/x\nTYPE=weird\n", Signature("weird", "unknown")),
        ("DEVNAME=/dev/x\nPART_ENTRY_SCHEME=dos\n", Signature("unknown", "PART_ENTRY_SCHEME")),
        ("", Signature("unknown", "unknown")),
    ],
)
def test_blkid_export_names_whatever_was_found(stdout: str, signature: Signature) -> None:
    assert parse_blkid_export(stdout) == signature


def test_only_filesystems_count_as_filesystems() -> None:
    assert Signature("xfs", "filesystem").is_filesystem
    assert not Signature("LVM2_member", "raid").is_filesystem
    assert not Signature("dos", "partition table").is_filesystem


def test_findmnt_reads_the_mount() -> None:
    assert parse_findmnt(FINDMNT_FS) == Mount(
        "/t/fs", "/dev/mapper/localcsi--t-a", "ext4", ("rw", "noatime"), DeviceNumber(253, 0)
    )


def test_findmnt_takes_the_topmost_of_stacked_mounts() -> None:
    rows = [
        {"target": "/t", "source": "/dev/a", "fstype": "ext4", "options": "rw", "maj:min": "253:0"},
        {"target": "/t", "source": "udev[/dm-1]", "fstype": "devtmpfs", "options": "ro,nosuid", "maj:min": "0:5"},
    ]
    mount = parse_findmnt(json.dumps({"filesystems": rows}))
    assert mount is not None
    assert (mount.source, mount.read_only, mount.device) == ("udev[/dm-1]", True, DeviceNumber(0, 5))


def test_findmnt_without_rows_is_no_mount() -> None:
    assert parse_findmnt('{"filesystems": []}') is None


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "not json",
        '{"filesystems": [{"target": "/t"}]}',
        '{"other": []}',
        '{"filesystems": [{"target": "/t", "source": "s", "fstype": "x", "options": "rw", "maj:min": "253"}]}',
    ],
)
def test_malformed_findmnt_output_is_internal(stdout: str) -> None:
    with pytest.raises(Internal, match="findmnt"):
        parse_findmnt(stdout)


@pytest.mark.parametrize(
    ("stdout", "info"),
    [
        ("directory|0|0|4096\n", PathInfo(PathKind.DIRECTORY, None, 4096)),
        ("regular empty file|0|0|0\n", PathInfo(PathKind.FILE, None, 0)),
        ("regular file|0|0|5\n", PathInfo(PathKind.FILE, None, 5)),
        ("block special file|fd|1a|0\n", PathInfo(PathKind.BLOCK_DEVICE, DeviceNumber(253, 26), 0)),
        ("symbolic link|0|0|25\n", PathInfo(PathKind.SYMLINK, None, 25)),
        ("fifo|0|0|0\n", PathInfo(PathKind.OTHER, None, 0)),
    ],
)
def test_stat_kinds_and_device_numbers(stdout: str, info: PathInfo) -> None:
    assert parse_stat(stdout) == info


@pytest.mark.parametrize("stdout", ["", "directory|0|0", "block special file|zz|1|0"])
def test_malformed_stat_output_is_internal(stdout: str) -> None:
    with pytest.raises(Internal, match="stat"):
        parse_stat(stdout)


def test_statfs_in_bytes_and_inodes() -> None:
    # A real sample: 1 KiB fragments, 56037 blocks, 56023 free, 51437 available; 16384 inodes, 16373 free.
    assert parse_statfs("1024 56037 56023 51437 16384 16373\n") == FsUsage(
        total_bytes=56037 * 1024,
        available_bytes=51437 * 1024,
        used_bytes=14 * 1024,
        total_inodes=16384,
        available_inodes=16373,
        used_inodes=11,
    )


@pytest.mark.parametrize("stdout", ["", "1 2 3", "a b c d e f"])
def test_malformed_statfs_output_is_internal(stdout: str) -> None:
    with pytest.raises(Internal, match="stat -f"):
        parse_statfs(stdout)


def test_device_size() -> None:
    assert parse_size("67108864\n") == 64 * 1024**2
    with pytest.raises(Internal, match="blockdev"):
        parse_size("big")


# -- parse_findmnt_all (appended with its tests) ----------------------------------------------------

from localcsi.fs.parse import parse_findmnt_all  # noqa: E402


def test_findmnt_all_lists_every_row_in_order() -> None:
    rows = [
        {"target": "/", "source": "/dev/vda1", "fstype": "ext4", "options": "rw,relatime", "maj:min": "252:1"},
        {"target": "/t", "source": "/dev/mapper/vg-a", "fstype": "xfs", "options": "ro", "maj:min": "253:10"},
        {"target": "/t", "source": "udev[/dm-1]", "fstype": "devtmpfs", "options": None, "maj:min": "0:5"},
    ]
    assert parse_findmnt_all(json.dumps({"filesystems": rows})) == [
        Mount("/", "/dev/vda1", "ext4", ("rw", "relatime"), DeviceNumber(252, 1)),
        Mount("/t", "/dev/mapper/vg-a", "xfs", ("ro",), DeviceNumber(253, 10)),
        Mount("/t", "udev[/dm-1]", "devtmpfs", (), DeviceNumber(0, 5)),
    ]


def test_findmnt_all_of_the_real_sample() -> None:
    assert parse_findmnt_all(FINDMNT_FS) == [
        Mount("/t/fs", "/dev/mapper/localcsi--t-a", "ext4", ("rw", "noatime"), DeviceNumber(253, 0))
    ]


def test_findmnt_all_without_rows_is_an_empty_list() -> None:
    assert parse_findmnt_all('{"filesystems": []}') == []


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "not json",
        '{"filesystems": [',
        "[]",
        '{"other": []}',
        '{"filesystems": null}',
        '{"filesystems": [{"target": "/t"}]}',
        '{"filesystems": [{"target": "/t", "source": "s", "fstype": "x", "options": "rw", "maj:min": "253"}]}',
        '{"filesystems": [{"target": "/t", "source": "s", "fstype": "x", "options": "rw", "maj:min": "a:b"}]}',
    ],
)
def test_malformed_findmnt_all_output_is_internal(stdout: str) -> None:
    with pytest.raises(Internal, match="findmnt"):
        parse_findmnt_all(stdout)
