"""Parsing lsblk, findmnt and lvm fullreport output, sysfs media types, and discovery's error paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import FINDMNT, LSBLK, MiB, fullreport
from pytest_subprocess import FakeProcess

from localcsi.agent.discovery import (
    CountingRunner,
    Discovery,
    findmnt_argv,
    lsblk_argv,
    parse_findmnt,
    parse_lsblk,
    parse_lvm_report,
    read_rotational,
)
from localcsi.core.errors import Internal
from localcsi.core.nodestorage import MediaType
from localcsi.lvm.commands import fullreport_argv
from localcsi.lvm.reports import ReportError
from localcsi.lvm.runner import CommandFailed, SubprocessRunner

pytestmark = pytest.mark.unit


def test_lsblk_columns_are_the_ones_lsblk_2_38_knows() -> None:
    assert lsblk_argv() == [
        "lsblk",
        "--json",
        "--bytes",
        "--output",
        "NAME,KNAME,PATH,SIZE,RO,TYPE,ROTA,FSTYPE,MOUNTPOINT,PKNAME",
    ]


def test_lsblk_tree_gives_disks_partitions_holders_and_mounts() -> None:
    devices = {d.name: d for d in parse_lsblk(LSBLK, {})}
    assert sorted(devices) == ["vda", "vdb", "vdb1", "vdb2", "vdc"]  # no rom, no device-mapper
    vdb, vdb1, vdb2 = devices["vdb"], devices["vdb1"], devices["vdb2"]
    assert vdb.partitions == ("vdb1", "vdb2") and vdb.holders == () and vdb.in_use
    assert (vdb1.type, vdb1.parent, vdb1.holders, vdb1.size_bytes) == ("part", "vdb", ("dm-0",), 500 * MiB)
    assert vdb2.mountpoint == "[SWAP]" and devices["vda"].mountpoint == "/"
    vdc = devices["vdc"]
    assert (vdc.read_only, vdc.media_type, vdc.fstype, vdc.path) == (True, MediaType.SSD, "ext4", "/dev/vdc")


def test_sysfs_rotational_wins_and_partitions_follow_their_disk() -> None:
    devices = {d.name: d for d in parse_lsblk(LSBLK, {"vdb": False, "vdc": True})}
    assert devices["vdb"].media_type is MediaType.SSD and devices["vdb1"].media_type is MediaType.SSD
    assert devices["vdc"].media_type is MediaType.HDD and devices["vda"].media_type is MediaType.HDD


def test_read_rotational_reads_queue_files(tmp_path: Path) -> None:
    for name, flag in (("vda", "1\n"), ("nvme0n1", "0\n")):
        (tmp_path / name / "queue").mkdir(parents=True)
        (tmp_path / name / "queue" / "rotational").write_text(flag)
    (tmp_path / "zram0").mkdir()  # no queue directory
    assert read_rotational(tmp_path) == {"vda": True, "nvme0n1": False}
    assert read_rotational(tmp_path / "missing") == {}


def test_findmnt_keeps_block_device_mounts_and_sees_binds() -> None:
    mounts = {m.path: m for m in parse_findmnt(FINDMNT)}
    assert sorted(mounts) == ["/", "/srv/data"]
    root, data = mounts["/"], mounts["/srv/data"]
    assert (root.device, root.total_bytes, root.available_bytes, root.is_bind, root.read_only) == (
        "/dev/vda", 3094126592, 2213326848, False, False,
    )  # fmt: skip
    assert (data.device, data.is_bind, data.read_only) == ("/dev/vdc", True, True)


def test_lvm_report_gives_vgs_with_pvs_free_pvs_and_lvs() -> None:
    inventory = parse_lvm_report(fullreport(3))
    [vg] = inventory.vgs
    assert (vg.name, vg.size_bytes, vg.free_bytes, vg.extent_size, vg.tags) == (
        "vgx", 2496 * MiB, 2396 * MiB, 4 * MiB, ("localcsi.io",),
    )  # fmt: skip
    assert [pv.name for pv in vg.pvs] == ["/dev/vdb1", "/dev/vdd"]
    assert [pv.name for pv in inventory.free_pvs] == ["/dev/vde"]
    assert [lv.name for lv in inventory.lvs] == ["lv0", "lv1", "lv2"]
    assert inventory.pv("/dev/vde") is not None and inventory.pv("/dev/vdd") is not None


@pytest.mark.parametrize(
    ("parse", "text", "error"),
    [
        (lambda t: parse_lsblk(t, {}), "lsblk: command not found", Internal),
        (lambda t: parse_lsblk(t, {}), '{"blockdevices": [{"kname": "vda", "type": "disk", "size": "big"}]}', Internal),
        (parse_findmnt, "[]", Internal),
        (parse_lvm_report, '{"report": 5}', ReportError),
        (parse_lvm_report, "  WARNING: locking failed", ReportError),
    ],
)
def test_malformed_output_is_an_error_naming_the_command(parse, text: str, error: type[Exception]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as raised:
        parse(text)
    assert any(word in str(raised.value) for word in ("lsblk", "findmnt", "lvm"))


def register_cycle(fp: FakeProcess, lvs: int) -> None:
    fp.register(lsblk_argv(), stdout=LSBLK)
    fp.register(findmnt_argv(), stdout=FINDMNT)
    fp.register(fullreport_argv(), stdout=fullreport(lvs))


@pytest.mark.parametrize("lvs", [3, 300])
def test_a_cycle_is_three_commands_one_of_them_lvm(fp: FakeProcess, tmp_path: Path, lvs: int) -> None:
    register_cycle(fp, lvs)
    runner = CountingRunner(SubprocessRunner())
    inventory = Discovery(runner, sys_block=tmp_path).discover()
    assert len(inventory.lvs) == lvs and len(inventory.devices) == 5 and len(inventory.mounts) == 2
    assert (runner.count, runner.lvm_count) == (3, 1)
    runner.reset()
    assert runner.count == 0


def test_a_failing_lvm_report_fails_discovery(fp: FakeProcess, tmp_path: Path) -> None:
    fp.register(lsblk_argv(), stdout=LSBLK)
    fp.register(findmnt_argv(), stdout=FINDMNT)
    fp.register(fullreport_argv(), returncode=5, stderr="  Failed to connect to lvmetad\n")
    with pytest.raises(CommandFailed, match="lvmetad"):
        Discovery(SubprocessRunner(), sys_block=tmp_path).discover()


def test_probe_reports_signatures_and_leaves_out_what_it_cannot_probe(fp: FakeProcess) -> None:
    def stat(device: str) -> list[Any]:
        return ["stat", "-L", "-c", fp.any(min=1, max=1), device]

    fp.register(stat("/dev/vdb"), stdout="block special file|fd|10|0\n")
    fp.register(["blkid", "-p", "-o", "export", "/dev/vdb"], stdout="DEVNAME=/dev/vdb\nTYPE=ext4\nUSAGE=filesystem\n")
    fp.register(stat("/dev/vdc"), stdout="block special file|fd|20|0\n")
    fp.register(["blkid", "-p", "-o", "export", "/dev/vdc"], returncode=2)
    fp.register(stat("/dev/vdx"), returncode=1, stderr="stat: cannot statx '/dev/vdx': No such file or directory")
    found = Discovery(SubprocessRunner()).probe(["/dev/vdb", "/dev/vdc", "/dev/vdx"])
    assert found == {"/dev/vdb": "ext4 (filesystem)", "/dev/vdc": None}
