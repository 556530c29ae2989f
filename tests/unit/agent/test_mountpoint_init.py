"""The agent's mount point initialisation on faked commands: what is formatted, refused and written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest
from pytest_subprocess import FakeProcess
from test_status import Events, PruningStatusWriter

from localcsi.agent.cycle import Agent
from localcsi.agent.mountpoint_init import MountPointInitializer, MountPointResult, uuid_argv
from localcsi.agent.orphans import OrphanTracker
from localcsi.agent.status import REASON_MOUNT_POINT_FAILED, StatusPublisher
from localcsi.core.mountpoint_init import MountPointToInit
from localcsi.lvm.runner import SubprocessRunner

pytestmark = pytest.mark.unit

UUID = "0b5d6c1e-7f3a-4e9b-9a51-2d0c8e7f6a11"
ENTRY = MountPointToInit("/mnt/a", "/dev/vdb", "ext4", ())
FINDMNT = ["findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN", "--mountpoint", "/mnt/a"]


def block(fp: FakeProcess, signature: str | None) -> None:
    fp.register(["stat", "-L", "-c", fp.any(min=1, max=1), "/dev/vdb"], stdout="block special file|fd|10|0\n")
    if signature is None:
        fp.register(["blkid", "-p", "-o", "export", "/dev/vdb"], returncode=2)
    else:
        fp.register(["blkid", "-p", "-o", "export", "/dev/vdb"],
                    stdout=f"DEVNAME=/dev/vdb\nUUID={UUID}\nTYPE={signature}\nUSAGE=filesystem\n")  # fmt: skip


def test_a_blank_device_is_formatted_persisted_and_mounted(tmp_path: Path, fp: FakeProcess) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text("/dev/vda1 / ext4 defaults 0 1\n")
    fp.register(FINDMNT, returncode=1)
    block(fp, None)
    fp.register(["mkfs.ext4", "-q", "/dev/vdb"])
    fp.register(uuid_argv("/dev/vdb"), stdout=f"{UUID}\n")
    fp.register(["mkdir", "-p", "/mnt/a"])
    fp.register(["mount", "/mnt/a"])
    result = MountPointInitializer(SubprocessRunner(), str(fstab)).ensure(ENTRY)
    assert result.ready, result.reason
    assert fstab.read_text().splitlines() == [
        "/dev/vda1 / ext4 defaults 0 1", f"UUID={UUID} /mnt/a ext4 nofail 0 2 # localcsi.io"
    ]  # fmt: skip


def test_a_device_with_a_signature_is_never_formatted(tmp_path: Path, fp: FakeProcess) -> None:
    fstab = tmp_path / "fstab"
    fp.register(FINDMNT, returncode=1)
    block(fp, "xfs")
    fp.register(uuid_argv("/dev/vdb"), stdout=f"{UUID}\n")
    result = MountPointInitializer(SubprocessRunner(), str(fstab)).ensure(ENTRY)
    assert not result.ready and "xfs" in result.reason and "never formatted" in result.reason
    assert fp.call_count(["mkfs.ext4", fp.any()]) == 0 and fp.call_count(["mount", fp.any()]) == 0
    assert not fstab.exists()


def test_our_own_filesystem_after_a_reboot_is_mounted_not_formatted(tmp_path: Path, fp: FakeProcess) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text(f"UUID={UUID} /mnt/a ext4 nofail 0 2 # localcsi.io\n")
    fp.register(FINDMNT, returncode=1)
    block(fp, "ext4")
    fp.register(uuid_argv("/dev/vdb"), stdout=f"{UUID}\n")
    fp.register(["mkdir", "-p", "/mnt/a"])
    fp.register(["mount", "/mnt/a"])
    assert MountPointInitializer(SubprocessRunner(), str(fstab)).ensure(ENTRY).ready
    assert fp.call_count(["mkfs.ext4", fp.any()]) == 0


def test_something_else_mounted_at_the_path_is_refused(tmp_path: Path, fp: FakeProcess) -> None:
    row = {"target": "/mnt/a", "source": "/dev/vdz", "fstype": "ext4", "options": "rw", "maj:min": "254:16"}
    fp.register(FINDMNT, stdout=json.dumps({"filesystems": [row]}))
    result = MountPointInitializer(SubprocessRunner(), str(tmp_path / "fstab")).ensure(ENTRY)
    assert not result.ready and "/dev/vdz is mounted there" in result.reason


class RefusingInitializer:
    def __init__(self) -> None:
        self.seen: list[MountPointToInit] = []

    def ensure(self, entry: MountPointToInit) -> MountPointResult:
        self.seen.append(entry)
        return MountPointResult(entry.path, False, "/dev/vdb carries ext4 (filesystem)")


def test_the_agents_cycle_initialises_the_specs_mount_points_and_reports_refusals() -> None:
    events = Events()
    agent = Agent("node-1", SubprocessRunner(), StatusPublisher(PruningStatusWriter(), events), None,
                  orphans=OrphanTracker(60.0, False))  # fmt: skip
    initializer = RefusingInitializer()
    agent.mount_points = cast(MountPointInitializer, initializer)
    nls = {"metadata": {"name": "node-1"}, "spec": {"resourceToBeInited": {"mountpoints": [
        {"path": "/mnt/a", "device": "/dev/vdb"}, {"path": "/", "device": "/dev/vdc"}]}}}  # fmt: skip
    assert agent._init_mount_points(nls)
    assert initializer.seen == [ENTRY]
    reasons = sorted(message for _, reason, message in events.seen if reason == REASON_MOUNT_POINT_FAILED)
    assert len(reasons) == 2 and "mount point /mnt/a: /dev/vdb carries ext4" in reasons[0]
    assert not agent._init_mount_points({"metadata": {"name": "node-1"}, "spec": {}})
