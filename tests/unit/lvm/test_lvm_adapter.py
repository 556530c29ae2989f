from collections.abc import Sequence

import pytest
from lvm_fixtures import (
    LINEAR,
    LVS_JSON,
    PVS_JSON,
    THICK_SNAP,
    VGS_JSON,
    fullreport_json,
    lv_row,
    lvs_json,
    parsed_lv,
)
from pytest_subprocess import FakeProcess

from localcsi.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from localcsi.core.params import LvmType
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import OWNER_TAG
from localcsi.lvm import commands
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.reports import ReportError
from localcsi.lvm.runner import NSENTER_PREFIX, CommandFailed, CommandResult, SubprocessRunner

pytestmark = pytest.mark.unit

REPORT = ["--reportformat", "json", "--units", "b", "--nosuffix"]
NOT_FOUND_LV = '  Failed to find logical volume "vg0/{}"\n'


@pytest.fixture
def lvm() -> Lvm:
    return Lvm(SubprocessRunner())


def lvs_one(vg: str, name: str) -> list[str]:
    return commands.lvs_argv(vg=vg, name=name)


def test_volume_groups_come_with_their_pvs(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(commands.vgs_argv(), stdout=VGS_JSON)
    fp.register(commands.pvs_argv(), stdout=PVS_JSON)
    vg0, ssd = lvm.volume_groups()
    assert [pv.name for pv in vg0.pvs] == ["/dev/loop0", "/dev/loop1"]
    assert vg0.pv_free_bytes == (5364514816, 2109734912)
    assert [pv.name for pv in ssd.pvs] == ["/dev/loop2"]


def test_list_pvs_of_one_vg(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(["pvs", *REPORT, "-o", "pv_name,vg_name,pv_size,pv_free,pv_attr"], stdout=PVS_JSON)
    assert [pv.name for pv in lvm.list_pvs("vg-ssd")] == ["/dev/loop2"]


def test_unknown_vg_is_not_found(fp: FakeProcess, lvm: Lvm) -> None:
    stderr = '  Volume group "nope" not found\n  Cannot process volume group nope\n'
    fp.register(commands.vgs_argv(["nope"]), returncode=5, stderr=stderr)
    with pytest.raises(NotFound, match='Volume group "nope" not found') as raised:
        lvm.list_vgs("nope")
    assert isinstance(raised.value.__cause__, CommandFailed)


def test_owned_lvs_select_by_tag_and_filter_both_ways(fp: FakeProcess, lvm: Lvm) -> None:
    stdout = lvs_json(lv_row("a", lv_tags=OWNER_TAG), lv_row("b", vg="vg1", lv_tags=OWNER_TAG), lv_row("c"))
    fp.register(commands.lvs_argv(vg="vg0", tag=OWNER_TAG), stdout=stdout)
    assert [lv.name for lv in lvm.owned_lvs("vg0")] == ["a"]
    assert list(fp.calls[-1])[-2:] == ["vg0", "@localcsi.io"]


def test_list_every_lv(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(commands.lvs_argv(), stdout=LVS_JSON)
    assert len(lvm.list_lvs()) == 8


def test_get_lv(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(["lvs", *REPORT, "-o", fp.any(min=1, max=1), "vg0/csi-a"], stdout=lvs_json(lv_row("csi-a")))
    lv = lvm.get_lv("vg0", "csi-a")
    assert lv is not None and lv.name == "csi-a"


def test_get_lv_of_a_missing_lv_is_none(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(lvs_one("vg0", "csi-x"), returncode=5, stderr=NOT_FOUND_LV.format("csi-x"))
    assert lvm.get_lv("vg0", "csi-x") is None


def test_state_reads_everything_from_one_fullreport(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(commands.fullreport_argv(), stdout=fullreport_json())
    state = lvm.state()
    assert [vg.name for vg in state.vgs] == ["vg0", "vg-ssd"]
    assert [len(vg.pvs) for vg in state.vgs] == [2, 1]
    assert len(state.lvs) == 8 and len(fp.calls) == 1


def test_malformed_report_is_a_clear_error(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(commands.lvs_argv(), stdout="  WARNING: Not using device /dev/sdb\n")
    with pytest.raises(ReportError, match="lvs did not print a JSON report"):
        lvm.list_lvs()


def test_create_linear(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register([fp.any()])
    lvm.create_lv(LvSpec("vg0", "csi-1", GiB, LvmType.LINEAR, tags=("localcsi.io",)))
    assert list(fp.calls[0]) == [
        "lvcreate", "--yes", "--type", "linear", "--name", "csi-1", "--size", "1073741824b",
        "--wipesignatures", "y", "--zero", "y", "--addtag", "localcsi.io", "vg0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        ('  Volume group "vg0" has insufficient free space (10 extents): 256 required.\n', ResourceExhausted),
        (
            "  Insufficient suitable allocatable extents for logical volume csi-1: 256 more required\n",
            ResourceExhausted,
        ),
        (
            "  Cannot create new thin volume, free space in thin pool vg0/pool reached threshold.\n",
            ResourceExhausted,
        ),
        ('  Logical Volume "csi-1" already exists in volume group "vg0"\n', AlreadyExists),
        ('  Volume group "vg0" not found\n', NotFound),
    ],
)
def test_create_failures_map_to_csi_codes(fp: FakeProcess, lvm: Lvm, stderr: str, error: type[Exception]) -> None:
    fp.register([fp.any()], returncode=5, stderr=stderr)
    with pytest.raises(error) as raised:
        lvm.create_lv(LvSpec("vg0", "csi-1", GiB, LvmType.LINEAR))
    assert stderr.strip() in str(raised.value)
    assert "lvcreate" in str(raised.value)


def test_unrecognised_failures_stay_internal_with_stderr(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register([fp.any()], returncode=5, stderr="  device-mapper: reload ioctl on (254:3) failed: Invalid argument\n")
    with pytest.raises(CommandFailed, match="reload ioctl") as raised:
        lvm.create_lv(LvSpec("vg0", "csi-1", GiB, LvmType.LINEAR))
    assert raised.value.code == "INTERNAL" and raised.value.returncode == 5


def test_ensure_thin_pool_keeps_an_existing_pool(fp: FakeProcess, lvm: Lvm) -> None:
    pool = lv_row("localcsi-thinpool", attr="twi-aotz--", lv_layout="thin,pool", lv_tags=OWNER_TAG)
    fp.register(lvs_one("vg0", "localcsi-thinpool"), stdout=lvs_json(pool))
    assert lvm.ensure_thin_pool("vg0", "localcsi-thinpool", 10 * GiB).is_thin_pool
    assert len(fp.calls) == 1


def test_ensure_thin_pool_creates_a_missing_pool(fp: FakeProcess, lvm: Lvm) -> None:
    pool = lv_row("localcsi-thinpool", attr="twi-a-tz--", lv_layout="thin,pool")
    fp.register(lvs_one("vg0", "localcsi-thinpool"), returncode=5, stderr=NOT_FOUND_LV.format("localcsi-thinpool"))
    fp.register(commands.thin_pool_argv("vg0", "localcsi-thinpool", 10 * GiB, [OWNER_TAG]))
    fp.register(lvs_one("vg0", "localcsi-thinpool"), stdout=lvs_json(pool))
    assert lvm.ensure_thin_pool("vg0", "localcsi-thinpool", 10 * GiB).is_thin_pool
    assert list(fp.calls[1])[:5] == ["lvcreate", "--yes", "--type", "thin-pool", "--name"]


def test_ensure_thin_pool_refuses_a_plain_lv_of_that_name(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(lvs_one("vg0", "pool"), stdout=lvs_json(lv_row("pool")))
    with pytest.raises(FailedPrecondition, match="not a thin pool"):
        lvm.ensure_thin_pool("vg0", "pool", GiB)


def test_snapshots(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register([fp.any()], occurrences=2)
    lvm.create_snapshot("vg0", "csi-1", "snap-1", cow_bytes=64 * MiB, tags=["localcsi.io"])
    lvm.create_snapshot("vg0", "csi-1", "snap-2", cow_bytes=None)
    assert list(fp.calls[0]) == [
        "lvcreate", "--yes", "--snapshot", "--name", "snap-1", "--size", "67108864b",
        "--addtag", "localcsi.io", "vg0/csi-1",
    ]  # fmt: skip
    assert list(fp.calls[1]) == [
        "lvcreate",
        "--yes",
        "--snapshot",
        "--name",
        "snap-2",
        "--setactivationskip",
        "n",
        "vg0/csi-1",
    ]


def test_remove_lv(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(lvs_one("vg0", "csi-1"), stdout=lvs_json(lv_row("csi-1")))
    fp.register(["lvremove", "--yes", "vg0/csi-1"])
    assert lvm.remove_lv("vg0", "csi-1") is True
    assert list(fp.calls[-1]) == ["lvremove", "--yes", "vg0/csi-1"]


def test_removing_a_missing_lv_is_a_no_op(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(lvs_one("vg0", "csi-1"), returncode=5, stderr=NOT_FOUND_LV.format("csi-1"))
    assert lvm.remove_lv("vg0", "csi-1") is False
    assert len(fp.calls) == 1


def test_removal_racing_another_removal_is_a_no_op(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(["lvremove", "--yes", "vg0/csi-1"], returncode=5, stderr=NOT_FOUND_LV.format("csi-1"))
    assert lvm.remove_lv("vg0", "csi-1", known=parsed_lv("csi-1")) is False


def test_an_origin_with_thick_snapshots_is_never_removed(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(commands.lvs_argv(vg="vg0", name=LINEAR), stdout=LVS_JSON)
    with pytest.raises(FailedPrecondition, match="delete its snapshots"):
        lvm.remove_lv("vg0", LINEAR)
    assert "lvremove" not in {next(iter(call)) for call in fp.calls}


def test_removing_an_open_lv_is_a_failed_precondition(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(["lvremove", "--yes", "vg0/csi-1"], returncode=5, stderr="  Logical volume vg0/csi-1 in use.\n")
    with pytest.raises(FailedPrecondition, match="in use"):
        lvm.remove_lv("vg0", "csi-1", known=parsed_lv("csi-1"))


def test_extend(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register(["lvextend", "--yes", "--size", "2147483648b", "vg0/csi-1"])
    lvm.extend_lv("vg0", "csi-1", 2 * GiB)
    assert len(fp.calls) == 1


def test_extending_to_the_current_size_succeeds(fp: FakeProcess, lvm: Lvm) -> None:
    stderr = "  New size (256 extents) matches existing size (256 extents).\n"
    fp.register([fp.any()], returncode=5, stderr=stderr)
    lvm.extend_lv("vg0", "csi-1", GiB)


def test_shrinking_is_out_of_range(fp: FakeProcess, lvm: Lvm) -> None:
    stderr = "  New size given (128 extents) not larger than existing size (256 extents)\n"
    fp.register([fp.any()], returncode=5, stderr=stderr)
    with pytest.raises(OutOfRange):
        lvm.extend_lv("vg0", "csi-1", GiB // 2)


def test_activation_and_tags(fp: FakeProcess, lvm: Lvm) -> None:
    fp.register([fp.any()], occurrences=5)
    lvm.activate("vg0", THICK_SNAP)
    lvm.deactivate("vg0", "csi-1")
    lvm.activate_vgs()
    lvm.add_tags("vg0", "csi-1", ["localcsi.io/fstype=xfs"])
    lvm.del_tags("vg0", "csi-1", ["localcsi.io/fstype=xfs"])
    assert [list(call)[:3] for call in fp.calls] == [
        ["lvchange", "--activate", "y"],
        ["lvchange", "--activate", "n"],
        ["vgchange", "--activate", "y"],
        ["lvchange", "--addtag", "localcsi.io/fstype=xfs"],
        ["lvchange", "--deltag", "localcsi.io/fstype=xfs"],
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda lvm: lvm.create_lv(LvSpec("vg0", "csi-1; reboot", GiB, LvmType.LINEAR)),
        lambda lvm: lvm.create_lv(LvSpec("$(reboot)", "csi-1", GiB, LvmType.LINEAR)),
        lambda lvm: lvm.create_lv(LvSpec("vg0", "csi-1", GiB, LvmType.LINEAR, tags=("a`id`",))),
        lambda lvm: lvm.create_lv(LvSpec("vg0", "csi-1", -1, LvmType.LINEAR)),
        lambda lvm: lvm.create_snapshot("vg0", "../etc", "snap-1", cow_bytes=None),
        lambda lvm: lvm.remove_lv("vg0", "-rf"),
        lambda lvm: lvm.extend_lv("vg0", "csi|1", GiB),
        lambda lvm: lvm.get_lv("vg 0", "csi-1"),
        lambda lvm: lvm.list_lvs(tag="a b"),
        lambda lvm: lvm.ensure_thin_pool("vg0", "p_tmeta", GiB),
        lambda lvm: lvm.activate_vgs("--all"),
        lambda lvm: lvm.add_tags("vg0", "csi-1", ["-x"]),
    ],
)
def test_invalid_names_never_reach_the_runner(fp: FakeProcess, lvm: Lvm, call: object) -> None:
    with pytest.raises(InvalidArgument):
        call(lvm)  # type: ignore[operator]
    assert len(fp.calls) == 0


def test_containerised_lvm_runs_through_nsenter(fp: FakeProcess) -> None:
    fp.register([*NSENTER_PREFIX, *commands.vgs_argv()], stdout=VGS_JSON)
    assert [vg.name for vg in Lvm(SubprocessRunner(nsenter=True)).list_vgs()] == ["vg0", "vg-ssd"]


class RecordingRunner:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        self.timeouts.append(timeout)
        return CommandResult(tuple(argv), 0, VGS_JSON, "", 0.0)


def test_any_runner_will_do_and_the_timeout_is_passed_on() -> None:
    runner = RecordingRunner()
    assert len(Lvm(runner, timeout=30).list_vgs()) == 2
    assert runner.timeouts == [30]
