"""Discovery on real disks and lvm2 in the node VM: the status says exactly what vgs, pvs, lvs,
blockdev and sysfs say; growth by vgextend and pvresize shows; the cost does not grow with LVs."""

from __future__ import annotations

import time

import pytest
from agent_guest import GuestAgent

from localcsi.core.names import volume_lv_name
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-a"
MiB = 1024**2
GiB = 1024**3
SPEC = {"listConfig": {"vgs": {"include": ["^localcsi-.+$"]}}, "reservedSpace": [{"vgName": VG, "percent": 10}]}


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[4, 4, 4])


@pytest.fixture(scope="module")
def guest(installed_vm: NodeVM) -> GuestAgent:
    vm = installed_vm
    vdb, vdc, _ = vm.data_disks()
    vm.check(["pvcreate", "-y", vdb, vdc])
    vm.check(["vgcreate", VG, vdb, vdc])
    tags = [arg for tag in encode_tags(LvMetadata(LvKind.VOLUME, "pvc-1", 100 * MiB)) for arg in ("--addtag", tag)]
    vm.check(["lvcreate", "-y", "-n", volume_lv_name("pvc-1"), "-L", "100m", *tags, VG])
    vm.check(["lvcreate", "-y", "--type", "raid1", "-m", "1", "-n", "home", "-L", "40m", VG])  # not ours
    vm.check(["lvcreate", "-y", "--type", "thin-pool", "-n", "pool0", "-L", "256m", "--addtag", "localcsi.io", VG])
    return GuestAgent(vm)


def test_status_numbers_equal_what_lvm2_blockdev_and_sysfs_say(guest: GuestAgent) -> None:
    run = guest.run(SPEC, cycles=2)
    row = guest.vgs()[VG]
    size, free, extent = int(row["vg_size"]), int(row["vg_free"]), int(row["vg_extent_size"])
    vg = run.vg(VG)
    reserved = -(-size * 10 // 100 // extent) * extent  # 10 % rounded up to whole extents
    assert (vg["total"], vg["available"], vg["extentSize"]) == (size, free, extent)
    assert reserved > 0 and vg["reserved"] == reserved and vg["allocatable"] == free - reserved
    assert vg["condition"] == "DiskReady"
    pvs = guest.report("pvs", "-o", "pv_name,vg_name,pv_size,pv_free")
    mine = {p["pv_name"]: p for p in pvs if p["vg_name"] == VG}
    assert vg["physicalVolumes"] == sorted(mine)
    assert {p["name"]: (p["total"], p["available"]) for p in vg["physicalVolumeInfo"]} == {
        name: (int(p["pv_size"]), int(p["pv_free"])) for name, p in mine.items()
    }
    lvs = guest.report("lvs", "-o", "lv_name,lv_size", VG)
    assert {lv["name"]: lv["total"] for lv in vg["logicalVolumes"]} == {r["lv_name"]: int(r["lv_size"]) for r in lvs}
    assert [p["name"] for p in vg["thinPools"]] == ["pool0"]
    assert run.status["filteredStorageInfo"]["volumeGroups"] == [VG]
    assert run.status["summary"] == {"readyVolumeGroups": 1, "total": size, "allocatable": free - reserved}

    devices = {d["name"]: d for d in run.status["nodeStorageInfo"]["deviceInfo"]}
    for disk in ("/dev/vda", *guest.vm.data_disks()):
        name = disk.removeprefix("/dev/")
        assert devices[disk]["total"] == int(guest.vm.check(["blockdev", "--getsize64", disk]).stdout)
        rotational = guest.vm.check(["cat", f"/sys/block/{name}/queue/rotational"]).stdout.strip()
        assert devices[disk]["mediaType"] == ("hdd" if rotational == "1" else "ssd")
    assert run.status["nodeStorageInfo"]["mountPoints"][0]["name"] == "/"

    first, second = run.cycles
    assert (first["commands"], first["lvm_commands"]) == (3, 1), first["argv"]
    assert first["written"] and not second["written"] and run.writes == 1  # nothing changed: no write
    assert run.condition("Ready")["status"] == "True"


def test_vgextend_and_pvresize_show_in_the_next_cycle(guest: GuestAgent) -> None:
    vdd = guest.vm.data_disks()[2]
    before = guest.run(SPEC).vg(VG)["total"]
    guest.vm.check(["pvcreate", "-y", "--setphysicalvolumesize", "1g", vdd])
    guest.vm.check(["vgextend", VG, vdd])
    extended = guest.run(SPEC).vg(VG)
    row = guest.vgs()[VG]
    assert extended["total"] == int(row["vg_size"]) and extended["available"] == int(row["vg_free"])
    assert GiB - 8 * MiB <= extended["total"] - before <= GiB and vdd in extended["physicalVolumes"]
    guest.vm.check(["pvresize", vdd])
    resized = guest.run(SPEC).vg(VG)
    row = guest.vgs()[VG]
    assert resized["total"] == int(row["vg_size"]) and resized["available"] == int(row["vg_free"])
    assert resized["total"] - extended["total"] >= 2 * GiB  # the whole 4 GiB disk now
    assert resized["reserved"] > extended["reserved"]  # the percent reserve follows the size


# One lvm shell reads every lvcreate from stdin: one process start instead of one per LV, which under
# emulation is most of an lvcreate's time. The shell goes on past a failed command, so the count is
# checked after.
CREATE_MANY = """
import subprocess, sys
vg, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = [f"lvcreate -an -Zn -y -L 4m -n many{index} --addtag localcsi.io {vg}" for index in range(first, first + count)]
subprocess.run(["lvm"], input="\\n".join(lines + ["exit", ""]), text=True, check=True, capture_output=True)
"""


def test_discovery_cost_with_300_lvs_is_the_same_as_with_3(guest: GuestAgent) -> None:
    count = len(guest.report("lvs", "-o", "lv_name"))
    assert count == 3, "this test starts from the module's three LVs"
    few = guest.run(SPEC).cycles[0]
    started = time.monotonic()
    guest.vm.check(["python3", "-c", CREATE_MANY, VG, "0", str(300 - count)], timeout=1800)
    made = time.monotonic() - started
    run = guest.run(SPEC)
    many = run.cycles[0]
    assert len(guest.report("lvs", "-o", "lv_name")) == 300 == len(run.vg(VG)["logicalVolumes"])
    guest.vm.phases.note(
        f"discovery: 3 LVs: {few['commands']} commands ({few['lvm_commands']} lvm), {few['seconds']:.2f}s; "
        f"300 LVs: {many['commands']} commands ({many['lvm_commands']} lvm), {many['seconds']:.2f}s; "
        f"297 lvcreate took {made:.0f}s"
    )
    assert (many["commands"], many["lvm_commands"]) == (few["commands"], few["lvm_commands"]) == (3, 1)
    assert [argv[0] for argv in many["argv"]] == [argv[0] for argv in few["argv"]] == ["lsblk", "findmnt", "lvm"]
