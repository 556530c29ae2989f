"""resourceToBeInited.mountpoints: parsing, and the agent's own fstab lines."""

from __future__ import annotations

import pytest

from localcsi.core.mountpoint_init import (
    MountPointToInit,
    our_fstab_entries,
    parse_mount_points_to_init,
    with_fstab_line,
)

pytestmark = pytest.mark.unit

UUID = "0b5d6c1e-7f3a-4e9b-9a51-2d0c8e7f6a11"


def test_entries_are_parsed_and_bad_ones_reported() -> None:
    spec = {"resourceToBeInited": {"mountpoints": [
        {"path": "/mnt/a", "device": "/dev/vdb", "fsType": "xfs", "options": ["noatime"]},
        {"path": "/mnt/b", "device": "/dev/vdc"},
        {"path": "/", "device": "/dev/vdd"},
        {"path": "/mnt/../etc", "device": "/dev/vdd"},
        {"path": "/mnt/e", "device": "vde"},
        {"path": "/mnt/f", "device": "/dev/vdf", "fsType": "btrfs"},
        {"path": "/mnt/g", "device": "/dev/vdg", "options": ["rw,exec"]},
    ]}}  # fmt: skip
    entries, problems = parse_mount_points_to_init(spec)
    assert entries == [
        MountPointToInit("/mnt/a", "/dev/vdb", "xfs", ("noatime",)),
        MountPointToInit("/mnt/b", "/dev/vdc", "ext4", ()),
    ]
    assert len(problems) == 5 and "mountpoints[2].path" in problems[0] and "options" in problems[4]
    assert parse_mount_points_to_init({}) == ([], [])


def test_fstab_lines_are_by_uuid_nofail_and_ours_only_are_replaced() -> None:
    entry = MountPointToInit("/mnt/a", "/dev/vdb", "xfs", ("noatime",))
    line = entry.fstab_line(UUID)
    assert line == f"UUID={UUID} /mnt/a xfs noatime,nofail 0 2 # localcsi.io"
    assert MountPointToInit("/mnt/b", "/dev/vdc").fstab_line(UUID).split()[3] == "nofail"
    with pytest.raises(ValueError, match="UUID"):
        entry.fstab_line("x y")
    theirs = ["# /etc/fstab", "/dev/vda1 / ext4 defaults 0 1", "UUID=abc /mnt/a ext4 defaults 0 2"]
    lines = with_fstab_line(theirs, "/mnt/a", line)
    assert lines == [*theirs, line], "a line not marked as ours is never touched"
    newer = MountPointToInit("/mnt/a", "/dev/vdb", "xfs").fstab_line("1111-2222")
    assert with_fstab_line(lines, "/mnt/a", newer) == [*theirs, newer]
    assert our_fstab_entries(lines) == {"/mnt/a": UUID}
