"""Comparing an existing mount with the one a repeated publish asks for."""

from __future__ import annotations

import pytest

from localcsi.fs.mounts import WantedMount, mount_differences
from localcsi.fs.types import DeviceNumber, Mount

pytestmark = pytest.mark.unit

EXT4_RW = Mount("/t", "/dev/mapper/vg-lv", "ext4", ("rw", "nosuid", "nodev", "noatime"), DeviceNumber(253, 1))


@pytest.mark.parametrize(
    "wanted",
    [
        WantedMount(block=False, readonly=False, fs_type="ext4", flags=("noatime", "nodev")),
        WantedMount(block=False, readonly=False, fs_type="", flags=()),
        WantedMount(block=False, readonly=False, fs_type="ext4", flags=("discard", "data=ordered")),
    ],
)
def test_a_matching_request(wanted: WantedMount) -> None:
    assert mount_differences(EXT4_RW, False, wanted) == []


@pytest.mark.parametrize(
    ("wanted", "differences"),
    [
        (WantedMount(block=False, readonly=True, fs_type="ext4"), ["read-write"]),
        (WantedMount(block=False, readonly=False, fs_type="xfs"), ["with ext4"]),
        (WantedMount(block=True, readonly=False, fs_type=""), ["as a filesystem"]),
        (
            WantedMount(block=False, readonly=True, fs_type="xfs", flags=("noexec", "sync", "noatime")),
            ["read-write", "with ext4", "without noexec,sync"],
        ),
    ],
)
def test_what_differs(wanted: WantedMount, differences: list[str]) -> None:
    assert mount_differences(EXT4_RW, False, wanted) == differences


def test_a_read_only_block_bind() -> None:
    bind = Mount("/t", "udev[/dm-1]", "devtmpfs", ("ro", "nosuid"), DeviceNumber(0, 5))
    assert mount_differences(bind, True, WantedMount(block=True, readonly=True, fs_type="")) == []
    assert mount_differences(bind, True, WantedMount(block=True, readonly=False, fs_type="")) == ["read-only"]
    assert str(WantedMount(block=True, readonly=True, fs_type="")) == "block device, read-only"
    assert str(WantedMount(block=False, readonly=False, fs_type="xfs", flags=("noatime",))) == "filesystem xfs noatime"
