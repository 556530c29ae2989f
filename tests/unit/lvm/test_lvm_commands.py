import pytest

from localcsi.core.errors import InvalidArgument
from localcsi.core.model import PhysicalVolume, VolumeGroup
from localcsi.core.params import LvmType, VolumeParams
from localcsi.core.placement import place
from localcsi.core.sizes import GiB, KiB, MiB
from localcsi.lvm import commands
from localcsi.lvm.commands import LvSpec

pytestmark = pytest.mark.unit

TAGS = ("localcsi.io", "localcsi.io/name=cHZjLTE")
REPORT = ["--reportformat", "json", "--units", "b", "--nosuffix"]


def spec(lvm_type: LvmType, **fields: object) -> LvSpec:
    values: dict[str, object] = {
        "vg": "vg0",
        "name": "csi-1",
        "size_bytes": GiB,
        "lvm_type": lvm_type,
        "tags": TAGS,
    }
    values.update(fields)
    return LvSpec(**values)  # type: ignore[arg-type]


def test_linear_argv() -> None:
    assert commands.lvcreate_argv(spec(LvmType.LINEAR)) == [
        "lvcreate", "--yes", "--type", "linear", "--name", "csi-1", "--size", "1073741824b",
        "--wipesignatures", "y", "--zero", "y",
        "--addtag", "localcsi.io", "--addtag", "localcsi.io/name=cHZjLTE", "vg0",
    ]  # fmt: skip


def test_striped_argv() -> None:
    argv = commands.lvcreate_argv(spec(LvmType.STRIPING, stripes=3, stripe_size_bytes=64 * KiB, tags=()))
    assert argv == [
        "lvcreate", "--yes", "--type", "striped", "--stripes", "3", "--stripesize", "64k",
        "--name", "csi-1", "--size", "1073741824b", "--wipesignatures", "y", "--zero", "y", "vg0",
    ]  # fmt: skip


def test_striped_without_a_stripe_size_leaves_lvm2s_default() -> None:
    assert "--stripesize" not in commands.lvcreate_argv(spec(LvmType.STRIPING, stripes=2))


def test_raid1_argv() -> None:
    assert commands.lvcreate_argv(spec(LvmType.RAID1, tags=())) == [
        "lvcreate", "--yes", "--type", "raid1", "--mirrors", "1", "--name", "csi-1", "--size", "1073741824b",
        "--wipesignatures", "y", "--zero", "y", "vg0",
    ]  # fmt: skip


def test_thin_argv_uses_a_virtual_size_and_no_wiping() -> None:
    assert commands.lvcreate_argv(spec(LvmType.THIN, thin_pool="localcsi-thinpool", tags=())) == [
        "lvcreate", "--yes", "--type", "thin", "--thinpool", "localcsi-thinpool", "--name", "csi-1",
        "--virtualsize", "1073741824b", "vg0",
    ]  # fmt: skip


def test_thin_pool_argv_zeroes_new_blocks() -> None:
    assert commands.thin_pool_argv("vg0", "localcsi-thinpool", 10 * GiB, ["localcsi.io"]) == [
        "lvcreate", "--yes", "--type", "thin-pool", "--name", "localcsi-thinpool", "--size", "10737418240b",
        "--zero", "y", "--addtag", "localcsi.io", "vg0",
    ]  # fmt: skip


def test_thick_and_thin_snapshot_argv() -> None:
    assert commands.snapshot_argv("vg0", "csi-1", "snap-1", 256 * 2**20, ["localcsi.io"]) == [
        "lvcreate", "--yes", "--snapshot", "--name", "snap-1", "--size", "268435456b",
        "--addtag", "localcsi.io", "vg0/csi-1",
    ]  # fmt: skip
    assert commands.snapshot_argv("vg0", "csi-1", "snap-1", None) == [
        "lvcreate", "--yes", "--snapshot", "--name", "snap-1", "--setactivationskip", "n", "vg0/csi-1",
    ]  # fmt: skip


def test_report_argv_asks_for_json_in_bytes() -> None:
    assert commands.vgs_argv(["vg0"])[:6] == ["vgs", *REPORT]
    assert commands.vgs_argv(["vg0"])[-1] == "vg0"
    assert commands.pvs_argv()[:8] == ["pvs", *REPORT, "-o", "pv_name,vg_name,pv_size,pv_free,pv_attr"]
    lvs = commands.lvs_argv()
    assert lvs[:7] == ["lvs", *REPORT, "-o"] and "lv_tags" in lvs[7].split(",") and len(lvs) == 8
    assert commands.lvs_argv(vg="vg0", name="csi-1")[-1] == "vg0/csi-1"
    assert commands.lvs_argv(vg="vg0", tag="localcsi.io")[-2:] == ["vg0", "@localcsi.io"]
    full = commands.fullreport_argv("vg0")
    assert full[:7] == ["lvm", "fullreport", *REPORT] and full[-1] == "vg0"
    assert full.count("--configreport") == 5


def test_other_argv() -> None:
    assert commands.lvremove_argv("vg0", "csi-1") == ["lvremove", "--yes", "vg0/csi-1"]
    assert commands.lvextend_argv("vg0", "csi-1", 2 * GiB) == [
        "lvextend",
        "--yes",
        "--size",
        "2147483648b",
        "vg0/csi-1",
    ]
    assert commands.activation_argv("vg0", "csi-1", active=True) == [
        "lvchange",
        "--activate",
        "y",
        "--ignoreactivationskip",
        "vg0/csi-1",
    ]
    assert commands.activation_argv("vg0", "csi-1", active=False) == [
        "lvchange",
        "--activate",
        "n",
        "vg0/csi-1",
    ]
    assert commands.tags_argv("vg0", "csi-1", add=["a"], delete=["b"]) == [
        "lvchange",
        "--addtag",
        "a",
        "--deltag",
        "b",
        "vg0/csi-1",
    ]
    assert commands.vgchange_activate_argv() == ["vgchange", "--activate", "y"]
    assert commands.vgchange_activate_argv(["vg0", "vg1"]) == ["vgchange", "--activate", "y", "vg0", "vg1"]


@pytest.mark.parametrize(
    "bad",
    [
        spec(LvmType.LINEAR, vg="vg0; reboot"),
        spec(LvmType.LINEAR, vg="-vg"),
        spec(LvmType.LINEAR, name="$(id)"),
        spec(LvmType.LINEAR, name="snapshot1"),
        spec(LvmType.LINEAR, name="x_tmeta"),
        spec(LvmType.LINEAR, tags=("--yes",)),
        spec(LvmType.LINEAR, tags=("a b",)),
        spec(LvmType.LINEAR, size_bytes=0),
        spec(LvmType.LINEAR, size_bytes=-GiB),
        spec(LvmType.LINEAR, size_bytes=GiB + 1),
        spec(LvmType.STRIPING),
        spec(LvmType.STRIPING, stripes=1),
        spec(LvmType.STRIPING, stripes=2, stripe_size_bytes=3000),
        spec(LvmType.THIN),
        spec(LvmType.THIN, thin_pool="../pool"),
    ],
)
def test_invalid_specs_never_become_argv(bad: LvSpec) -> None:
    with pytest.raises(InvalidArgument):
        commands.lvcreate_argv(bad)


@pytest.mark.parametrize(
    "build",
    [
        lambda: commands.lvremove_argv("vg0", "a;b"),
        lambda: commands.lvextend_argv("vg 0", "csi-1", GiB),
        lambda: commands.snapshot_argv("vg0", "csi-1", "snapshot-x", None),
        lambda: commands.snapshot_argv("vg0", "csi-1", "snap-1", 100),
        lambda: commands.lvs_argv(name="csi-1"),
        lambda: commands.lvs_argv(tag="-x"),
        lambda: commands.vgs_argv(["-a"]),
        lambda: commands.tags_argv("vg0", "csi-1"),
        lambda: commands.fullreport_argv("vg/0"),
    ],
)
def test_invalid_names_never_become_argv(build: object) -> None:
    with pytest.raises(InvalidArgument):
        build()  # type: ignore[operator]


def test_a_placement_becomes_the_argv_for_its_volume() -> None:
    pvs = tuple(PhysicalVolume(f"/dev/vd{c}", "vg0", 10 * GiB, 10 * GiB) for c in "bc")
    group = VolumeGroup("vg0", 20 * GiB, 20 * GiB, 4 * MiB, 2, pvs=pvs)
    placement = place([group], [], VolumeParams(lvm_type=LvmType.STRIPING), GiB + 1, 0)
    argv = commands.lvcreate_argv(LvSpec.for_placement(placement, "csi-1", ["localcsi.io"]))
    assert argv[2:6] == ["--type", "striped", "--stripes", "2"]
    assert argv[argv.index("--size") + 1] == f"{GiB + 8 * MiB}b"
