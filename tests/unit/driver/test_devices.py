"""Device volumes' node side: which disks are free, and the commands that make and tear down a volume.

lsblk, blkid and the disk commands are faked (pytest-subprocess); lvm2 is a small fake here. The
real disks are in tests/node/plugin/test_exclusive_vm.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import cast

import pytest
from pytest_subprocess import FakeProcess

from localcsi.core.errors import FailedPrecondition, ResourceExhausted
from localcsi.core.exclusive import Disk, device_vg_name
from localcsi.core.ids import LvRef
from localcsi.core.model import LogicalVolume, PhysicalVolume, VolumeGroup
from localcsi.core.names import volume_lv_name
from localcsi.core.nodestorage import parse_spec
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.driver.devices import DevicePlan, LocalDevices, pvremove_argv, vgcreate_argv, wipefs_argv
from localcsi.fs.block_devices import lsblk_argv
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner

pytestmark = pytest.mark.unit

NAME = "pvc-1"
VG = device_vg_name(NAME)
LV = volume_lv_name(NAME)


class FakeLvm:
    def __init__(self) -> None:
        self.pvs: list[PhysicalVolume] = []
        self.vgs: list[VolumeGroup] = []
        self.lvs: list[LogicalVolume] = []
        self.removed: list[str] = []

    def list_pvs(self, vg: str | None = None) -> list[PhysicalVolume]:
        return [pv for pv in self.pvs if vg is None or pv.vg == vg]

    def list_vgs(self, *names: str) -> list[VolumeGroup]:
        return [vg for vg in self.vgs if not names or vg.name in names]

    def list_lvs(self, vg: str | None = None) -> list[LogicalVolume]:
        return [lv for lv in self.lvs if vg is None or lv.vg == vg]

    def get_lv(self, vg: str, name: str) -> LogicalVolume | None:
        return next((lv for lv in self.lvs if lv.vg == vg and lv.name == name), None)

    def create_lv(self, spec: LvSpec) -> None:
        self.lvs.append(LogicalVolume(spec.vg, spec.name, spec.size_bytes, "-wi-a-----", tags=spec.tags))

    def remove_lv(self, vg: str, name: str, *, known: LogicalVolume | None = None) -> bool:
        self.removed.append(f"{vg}/{name}")
        self.lvs = [lv for lv in self.lvs if (lv.vg, lv.name) != (vg, name)]
        return True

    def activate(self, vg: str, name: str) -> None:
        pass


class FakeBlocks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def wipe(self, path: str) -> None:
        self.calls.append(("wipe", path))

    def zero_ends(self, path: str, length: int) -> None:
        assert length == MiB
        self.calls.append(("zero_ends", path))


def lsblk(*disks: dict[str, object]) -> str:
    rows = []
    for disk in disks:
        name = str(disk["name"])
        row = {"name": name, "kname": name, "path": f"/dev/{name}", "size": disk.get("size", GiB), "ro": False,
               "type": "disk", "rota": True, "fstype": disk.get("fstype"), "mountpoint": disk.get("mountpoint"),
               "pkname": None, "children": disk.get("children", [])}  # fmt: skip
        rows.append(row)
    return json.dumps({"blockdevices": rows})


def blank(fp: FakeProcess, device: str) -> None:
    fp.register(["stat", "-L", "-c", fp.any(min=1, max=1), device], stdout="block special file|fd|10|0\n")
    fp.register(["blkid", "-p", "-o", "export", device], returncode=2)


def formatted(fp: FakeProcess, device: str, fs: str = "ext4") -> None:
    fp.register(["stat", "-L", "-c", fp.any(min=1, max=1), device], stdout="block special file|fd|10|0\n")
    fp.register(["blkid", "-p", "-o", "export", device], stdout=f"DEVNAME={device}\nTYPE={fs}\nUSAGE=filesystem\n")


def devices(tmp_path: Path, lvm: FakeLvm, blocks: FakeBlocks | None = None, patterns: tuple[str, ...] = ("/dev/vd*",),
            changes: list[int] | None = None) -> LocalDevices:  # fmt: skip
    by_id = tmp_path / "by-id"
    by_id.mkdir(exist_ok=True)
    seen = changes if changes is not None else []
    return LocalDevices(SubprocessRunner(), "node-1", patterns, lvm=cast(Lvm, lvm), blocks=blocks or FakeBlocks(),
                        on_change=lambda: seen.append(1), sys_block=tmp_path / "sys", by_id=by_id)  # fmt: skip


def plan() -> DevicePlan:
    tags = encode_tags(LvMetadata(LvKind.VOLUME, NAME, 512 * MiB, None, "ext4", "mount"))
    return DevicePlan(LvRef("node-1", VG, LV), NAME, 512 * MiB, 0, None, tags)


def test_argv_never_touches_a_path_that_is_not_one() -> None:
    assert vgcreate_argv(VG, "/dev/vdb", ["localcsi.io/disk=/dev/vdb"]) == [
        "vgcreate", "--addtag", "localcsi.io", "--addtag", "localcsi.io/disk=/dev/vdb", VG, "/dev/vdb"
    ]  # fmt: skip
    assert pvremove_argv("/dev/vdb") == ["pvremove", "-ff", "-y", "/dev/vdb"]
    assert wipefs_argv("/dev/vdb") == ["wipefs", "-a", "/dev/vdb"]
    with pytest.raises(Exception, match=r"disk"):
        wipefs_argv("-a")


def test_only_selected_blank_whole_disks_are_free(tmp_path: Path, fp: FakeProcess) -> None:
    lvm = FakeLvm()
    lvm.pvs = [PhysicalVolume("/dev/vdf", "other", GiB, 0), PhysicalVolume("/dev/vdg", VG, GiB, 0)]
    part = {"name": "vdc1", "kname": "vdc1", "path": "/dev/vdc1", "size": GiB, "type": "part", "pkname": "vdc"}
    fp.register(lsblk_argv(), stdout=lsblk(
        {"name": "vdb"}, {"name": "vdc", "children": [part]}, {"name": "vdd", "mountpoint": "/data"},
        {"name": "vde"}, {"name": "vdf"}, {"name": "vdg"}, {"name": "sda"},
    ))  # fmt: skip
    blank(fp, "/dev/vdb")
    formatted(fp, "/dev/vde", "xfs")
    disks = {disk.path: disk for disk in devices(tmp_path, lvm).disks()}
    assert set(disks) == {f"/dev/vd{c}" for c in "bcdefg"}, "sda matches no pattern: never looked at"
    assert disks["/dev/vdb"].free
    assert "partitions" in disks["/dev/vdc"].problem
    assert "mounted at /data" in disks["/dev/vdd"].problem
    assert "xfs" in disks["/dev/vde"].problem
    assert "LVM PV of other" in disks["/dev/vdf"].problem
    assert disks["/dev/vdg"].owner_vg == VG and not disks["/dev/vdg"].free
    assert fp.call_count(["blkid", fp.any()]) == 2, "only disks with no other problem are probed"


def test_create_takes_the_disk_with_vgcreate_then_one_lv_over_it(tmp_path: Path, fp: FakeProcess) -> None:
    lvm = FakeLvm()
    fp.register(lsblk_argv(), stdout=lsblk({"name": "vdb", "size": 2 * GiB}))
    blank(fp, "/dev/vdb")
    blank(fp, "/dev/vdb")  # probed again right before vgcreate

    def vgcreate(process: object) -> None:
        lvm.vgs.append(VolumeGroup(VG, 2044 * MiB, 2044 * MiB, 4 * MiB, 1))
        lvm.pvs.append(PhysicalVolume("/dev/vdb", VG, 2 * GiB, 2044 * MiB))

    fp.register(vgcreate_argv(VG, "/dev/vdb", ["localcsi.io/disk=/dev/vdb"]), callback=vgcreate)
    changes: list[int] = []
    volume = devices(tmp_path, lvm, changes=changes).create(plan())
    assert volume.id == f"node-1/{VG}/{LV}" and volume.size_bytes == 2044 * MiB
    assert "localcsi.io/volumeType=Device" in volume.lv.tags and "localcsi.io/disk=/dev/vdb" in volume.lv.tags
    assert changes, "the LVM backend's cached view must learn of the new LV"
    # A retry finds the VG and the LV of the first attempt: no second vgcreate.
    assert devices(tmp_path, lvm).create(plan()) == volume
    assert fp.call_count(["vgcreate", fp.any()]) == 1


def test_create_after_a_crash_between_vgcreate_and_lvcreate_finishes_in_the_same_vg(tmp_path: Path) -> None:
    lvm = FakeLvm()
    lvm.vgs = [VolumeGroup(VG, 1020 * MiB, 1020 * MiB, 4 * MiB, 1)]
    lvm.pvs = [PhysicalVolume("/dev/vdb", VG, GiB, 1020 * MiB)]
    volume = devices(tmp_path, lvm).create(plan())
    assert volume.ref.vg == VG and volume.size_bytes == 1020 * MiB


def test_a_signature_appearing_before_vgcreate_refuses(tmp_path: Path, fp: FakeProcess) -> None:
    fp.register(lsblk_argv(), stdout=lsblk({"name": "vdb"}))
    blank(fp, "/dev/vdb")
    formatted(fp, "/dev/vdb")
    with pytest.raises(FailedPrecondition, match="no longer blank"):
        devices(tmp_path, FakeLvm()).create(plan())
    assert fp.call_count(["vgcreate", fp.any()]) == 0


def test_no_fitting_disk_is_resource_exhausted(tmp_path: Path, fp: FakeProcess) -> None:
    fp.register(lsblk_argv(), stdout=lsblk({"name": "vdb", "size": 256 * MiB}))
    blank(fp, "/dev/vdb")
    with pytest.raises(ResourceExhausted, match="vdb"):
        devices(tmp_path, FakeLvm()).create(plan())


def test_delete_wipes_removes_and_blanks_the_disk_and_is_idempotent(tmp_path: Path, fp: FakeProcess) -> None:
    lvm = FakeLvm()
    lvm.vgs = [VolumeGroup(VG, GiB, 0, 4 * MiB, 1)]
    lvm.pvs = [PhysicalVolume("/dev/vdb", VG, GiB, 0)]
    lvm.lvs = [LogicalVolume(VG, LV, 1020 * MiB, "-wi-a-----")]
    blocks = FakeBlocks()
    fp.register(pvremove_argv("/dev/vdb"), callback=lambda _: lvm.vgs.clear())
    fp.register(wipefs_argv("/dev/vdb"))
    devices(tmp_path, lvm, blocks).delete(LvRef("node-1", VG, LV))
    assert blocks.calls == [("wipe", f"/dev/{VG}/{LV}"), ("zero_ends", "/dev/vdb")]
    assert lvm.removed == [f"{VG}/{LV}"]
    devices(tmp_path, lvm, blocks).delete(LvRef("node-1", VG, LV))  # the VG is gone: nothing to do
    assert len(blocks.calls) == 2


def test_delete_refuses_an_open_volume_and_touches_nothing(tmp_path: Path) -> None:
    lvm = FakeLvm()
    lvm.vgs = [VolumeGroup(VG, GiB, 0, 4 * MiB, 1)]
    lvm.lvs = [LogicalVolume(VG, LV, 1020 * MiB, "-wi-ao----")]
    blocks = FakeBlocks()
    with pytest.raises(FailedPrecondition, match="open"):
        devices(tmp_path, lvm, blocks).delete(LvRef("node-1", VG, LV))
    assert blocks.calls == [] and lvm.removed == []


def test_no_patterns_no_disks(tmp_path: Path, fp: FakeProcess) -> None:
    assert devices(tmp_path, FakeLvm(), patterns=()).disks() == []
    assert fp.call_count([fp.any()]) == 0


def test_two_creates_never_take_the_same_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lvm = FakeLvm()
    made: list[list[str]] = []

    class SlowVgcreate:
        def run(self, argv: list[str], *, timeout: float | None = None) -> object:
            assert argv[0] == "vgcreate"
            time.sleep(0.2)  # the other create looks at the disks meanwhile
            made.append(argv)
            vg = argv[-2]
            lvm.vgs.append(VolumeGroup(vg, 1020 * MiB, 1020 * MiB, 4 * MiB, 1))
            lvm.pvs.append(PhysicalVolume(argv[-1], vg, GiB, 1020 * MiB))
            return None

    local = devices(tmp_path, lvm)
    local.runner = cast(SubprocessRunner, SlowVgcreate())
    monkeypatch.setattr(local, "disks", lambda: [
        Disk("/dev/vdb", GiB, True, owner_vg=next((pv.vg for pv in lvm.pvs), ""))
    ])  # fmt: skip
    monkeypatch.setattr(local, "_signature", lambda path: "")
    results: list[object] = []

    def create(name: str) -> None:
        tags = encode_tags(LvMetadata(LvKind.VOLUME, name, MiB))
        ref = LvRef("node-1", device_vg_name(name), volume_lv_name(name))
        try:
            results.append(local.create(DevicePlan(ref, name, MiB, 0, None, tags)))
        except ResourceExhausted as error:
            results.append(error)

    threads = [threading.Thread(target=create, args=(name,)) for name in ("pvc-a", "pvc-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1, "both creates ran vgcreate on the one disk"
    assert sorted(type(r).__name__ for r in results) == ["ResourceExhausted", "Volume"]


def test_the_agents_listconfig_selects_by_kernel_name_or_path_and_nothing_else_is_probed(
    tmp_path: Path, fp: FakeProcess
) -> None:
    fp.register(lsblk_argv(), stdout=lsblk({"name": "vdb"}, {"name": "vdc"}, {"name": "vdd"}))
    blank(fp, "/dev/vdb")
    blank(fp, "/dev/vdd")
    spec = parse_spec({"listConfig": {"devices": {"include": ["vd[bc]", "/dev/vdd"], "exclude": ["^vdc$"]}}})
    local = devices(tmp_path, FakeLvm(), patterns=())
    local.selects = lambda names: spec.devices.accepts(*names)
    assert [disk.path for disk in local.disks()] == ["/dev/vdb", "/dev/vdd"]
    assert fp.call_count(["blkid", "-p", "-o", "export", "/dev/vdb"]) == 1
    assert fp.call_count(["blkid", "-p", "-o", "export", "/dev/vdc"]) == 0, "an excluded disk is never probed"
    local.selects = None
    assert local.disks() == [], "no patterns and no listConfig: no disk at all"
