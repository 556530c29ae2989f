"""VG creation's error paths: a late signature, a device that cannot discard, a failing vgcreate."""

from __future__ import annotations

import pytest
from pytest_subprocess import FakeProcess

from localcsi.agent.vginit import VgInitializer, blkdiscard_argv, pvcreate_argv, pvremove_argv, vgcreate_argv
from localcsi.core.errors import InvalidArgument
from localcsi.core.nodestorage_init import VgCreate
from localcsi.lvm.runner import SubprocessRunner

pytestmark = pytest.mark.unit

BLANK = VgCreate("pool0", ("/dev/vdb", "/dev/vdc"))


def stat(fp: FakeProcess, device: str) -> None:
    fp.register(["stat", "-L", "-c", fp.any(min=1, max=1), device], stdout="block special file|fd|10|0\n")


def blank(fp: FakeProcess, device: str) -> None:
    stat(fp, device)
    fp.register(["blkid", "-p", "-o", "export", device], returncode=2)


def test_argv_never_forces_and_tags_the_vg() -> None:
    assert pvcreate_argv(["/dev/vdb"]) == ["pvcreate", "/dev/vdb"]
    assert vgcreate_argv("pool0", ["/dev/vdb"]) == ["vgcreate", "--addtag", "localcsi.io", "pool0", "/dev/vdb"]
    assert blkdiscard_argv("/dev/vdb") == ["blkdiscard", "/dev/vdb"]
    with pytest.raises(InvalidArgument):
        vgcreate_argv("-ff", ["/dev/vdb"])
    with pytest.raises(InvalidArgument):
        pvcreate_argv(["vdb"])


def test_a_signature_found_at_the_last_moment_refuses_and_writes_nothing(fp: FakeProcess) -> None:
    blank(fp, "/dev/vdb")
    stat(fp, "/dev/vdc")
    fp.register(["blkid", "-p", "-o", "export", "/dev/vdc"], stdout="DEVNAME=/dev/vdc\nTYPE=xfs\nUSAGE=filesystem\n")
    result = VgInitializer(SubprocessRunner()).create(BLANK)
    assert not result.created and result.error == ""
    [refusal] = result.refusals
    assert refusal.device == "/dev/vdc" and "xfs (filesystem)" in refusal.reason
    assert fp.call_count(["pvcreate", fp.any()]) == 0 and fp.call_count(["blkdiscard", fp.any()]) == 0


def test_a_device_that_cannot_discard_is_used_as_it_is(fp: FakeProcess) -> None:
    blank(fp, "/dev/vdb")
    fp.register(blkdiscard_argv("/dev/vdb"), returncode=1, stderr="blkdiscard: Operation not supported\n")
    fp.register(pvcreate_argv(["/dev/vdb"]))
    fp.register(vgcreate_argv("pool0", ["/dev/vdb"]))
    assert VgInitializer(SubprocessRunner()).create(VgCreate("pool0", ("/dev/vdb",))).created


def test_a_failing_vgcreate_removes_the_pvs_it_just_made(fp: FakeProcess) -> None:
    blank(fp, "/dev/vdb")
    fp.register(pvcreate_argv(["/dev/vdb"]))
    fp.register(
        vgcreate_argv("pool0", ["/dev/vdb"]), returncode=5, stderr="  A volume group called pool0 already exists.\n"
    )
    fp.register(pvremove_argv(["/dev/vdb"]))
    result = VgInitializer(SubprocessRunner(), discard=False).create(VgCreate("pool0", ("/dev/vdb",)))
    assert not result.created and "already exists" in result.error
    assert fp.call_count(pvremove_argv(["/dev/vdb"])) == 1


def test_a_failing_pvcreate_stops_before_vgcreate(fp: FakeProcess) -> None:
    blank(fp, "/dev/vdb")
    fp.register(pvcreate_argv(["/dev/vdb"]), returncode=5, stderr="  Aborted wiping of dos.\n")
    result = VgInitializer(SubprocessRunner(), discard=False).create(VgCreate("pool0", ("/dev/vdb",)))
    assert "Aborted wiping" in result.error and fp.call_count(["vgcreate", fp.any()]) == 0
