"""VG initialisation on real disks in the node VM: a blank disk becomes a tagged VG whose status equals
vgs; a disk with a filesystem, or a VG with one such disk, is left byte-for-byte untouched and reported."""

from __future__ import annotations

import pytest
from agent_guest import GuestAgent

from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

INCLUDE = {"vgs": {"include": ["^localcsi-pool-[0-9]+$"]}}
FIRST_MIB = "head -c 1048576 {0} | sha256sum"


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[2, 2, 2])


@pytest.fixture(scope="module")
def guest(installed_vm: NodeVM) -> GuestAgent:
    return GuestAgent(installed_vm)


def spec(*vgs: tuple[str, list[str]]) -> dict[str, object]:
    return {"listConfig": INCLUDE, "resourceToBeInited": {"vgs": [{"name": n, "devices": d} for n, d in vgs]}}


def fingerprint(guest: GuestAgent, device: str) -> tuple[str, str, str]:
    """What must not change on a refused device: blkid's view and the first MiB and a middle MiB."""
    blkid = guest.vm.run(["blkid", "-p", "-o", "export", device]).stdout
    head = guest.sh(FIRST_MIB.format(device)).split()[0]
    middle = guest.sh(f"dd if={device} bs=1M skip=512 count=1 status=none | sha256sum").split()[0]
    return blkid, head, middle


def pv_names(guest: GuestAgent) -> set[str]:
    return {row["pv_name"] for row in guest.report("pvs", "-o", "pv_name")}


def test_a_blank_disk_becomes_a_tagged_vg_and_status_equals_vgs(guest: GuestAgent) -> None:
    vdb = guest.vm.data_disks()[0]
    run = guest.run(spec(("localcsi-pool-0", [vdb])), cycles=2)
    row = guest.vgs()["localcsi-pool-0"]
    assert row["vg_tags"] == "localcsi.io" and vdb in pv_names(guest)
    vg = run.vg("localcsi-pool-0")
    assert (vg["total"], vg["available"], vg["physicalVolumes"]) == (int(row["vg_size"]), int(row["vg_free"]), [vdb])
    assert run.status["filteredStorageInfo"]["volumeGroups"] == ["localcsi-pool-0"]
    condition = run.condition("VolumeGroupsInitialized")
    assert (condition["status"], condition["reason"]) == ("True", "Initialized")
    assert [e[:2] for e in run.events] == [["Normal", "VolumeGroupCreated"]]
    first, second = run.cycles
    programs = [argv[0] for argv in first["argv"]]
    assert programs.index("blkid") < programs.index("pvcreate") < programs.index("vgcreate")
    assert programs.count("blkid") == 2  # the plan's probe, then again right before pvcreate
    assert [argv[0] for argv in second["argv"]] == ["lsblk", "findmnt", "lvm"]  # the VG exists: nothing to do
    assert not second["written"]


def test_a_disk_with_a_filesystem_is_left_untouched_and_reported(guest: GuestAgent) -> None:
    vdc = guest.vm.data_disks()[1]
    guest.vm.check(["mkfs.ext4", "-q", vdc])
    before = fingerprint(guest, vdc)
    run = guest.run(spec(("localcsi-pool-1", [vdc])))
    assert fingerprint(guest, vdc) == before and vdc not in pv_names(guest)
    assert "localcsi-pool-1" not in guest.vgs()
    condition = run.condition("VolumeGroupsInitialized")
    assert (condition["status"], condition["reason"]) == ("False", "DevicesRefused")
    assert f"VG localcsi-pool-1, device {vdc}: blkid finds ext4 (filesystem)" in condition["message"]
    assert run.condition("Ready")["status"] == "False"
    [event] = run.events
    assert event[:2] == ["Warning", "DeviceRefused"] and vdc in event[2] and "ext4" in event[2]
    assert not any(argv[0] in ("pvcreate", "vgcreate", "blkdiscard", "wipefs") for argv in run.cycles[0]["argv"])


def test_one_unsafe_disk_refuses_the_whole_vg_until_the_operator_clears_it(guest: GuestAgent) -> None:
    vdc, vdd = guest.vm.data_disks()[1:]
    guest.sh(f"printf 'keep me' | dd of={vdd} bs=1M seek=512 conv=notrunc status=none")  # data, but no signature
    blank_before = fingerprint(guest, vdd)
    used_before = fingerprint(guest, vdc)
    refused = guest.run(spec(("localcsi-pool-2", [vdd, vdc])))
    assert fingerprint(guest, vdd) == blank_before and fingerprint(guest, vdc) == used_before
    assert not {vdc, vdd} & pv_names(guest)
    message = refused.condition("VolumeGroupsInitialized")["message"]
    assert vdc in message and vdd not in message  # only the device that is the problem is named

    guest.vm.check(["wipefs", "-a", vdc])  # what the message tells the operator to do
    run = guest.run(spec(("localcsi-pool-2", [vdd, vdc])))
    row = guest.vgs()["localcsi-pool-2"]
    assert {vdc, vdd} <= pv_names(guest) and row["vg_tags"] == "localcsi.io"
    assert run.vg("localcsi-pool-2")["total"] == int(row["vg_size"])
    assert run.condition("VolumeGroupsInitialized")["status"] == "True"
