"""Parsing lvm fullreport output, and discovery's three commands and error paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_fixtures import MiB, fullreport
from pytest_subprocess import FakeProcess

from localcsi.agent.discovery import CountingRunner, Discovery, parse_lvm_report
from localcsi.fs.block_devices import findmnt_argv, lsblk_argv
from localcsi.lvm.commands import fullreport_argv
from localcsi.lvm.reports import ReportError
from localcsi.lvm.runner import CommandFailed, SubprocessRunner

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parent.parent / "fs" / "data"  # lsblk and findmnt as 2.38 prints them
LSBLK = (SAMPLES / "lsblk-2.38.json").read_text()
FINDMNT = (SAMPLES / "findmnt-2.38.json").read_text()


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
