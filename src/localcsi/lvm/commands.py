"""argv for each lvm2 operation. Pure: every name, tag and size is validated here, before any process.

Per volume type (sizes in bytes, already whole extents):

    linear   lvcreate --yes --type linear  --name N --size Sb --wipesignatures y --zero y [--addtag T].. VG
    striping lvcreate --yes --type striped --stripes K [--stripesize Xk] --name N --size Sb
                      --wipesignatures y --zero y [--addtag T].. VG
    raid1    lvcreate --yes --type raid1 --mirrors 1 --name N --size Sb --wipesignatures y --zero y .. VG
    thin     lvcreate --yes --type thin --thinpool P --name N --virtualsize Sb [--addtag T].. VG
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localcsi.core.errors import InvalidArgument
from localcsi.core.names import validate_lv_name, validate_thin_pool_name, validate_vg_name
from localcsi.core.params import MAX_STRIPES, MIN_STRIPE_SIZE, LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import KiB
from localcsi.core.tags import validate_tag
from localcsi.lvm.reports import LV_FIELDS, PV_FIELDS, VG_FIELDS

REPORT_OPTIONS = ("--reportformat", "json", "--units", "b", "--nosuffix")
_SECTOR = 512


@dataclass(frozen=True)
class LvSpec:
    """A logical volume to create."""

    vg: str
    name: str
    size_bytes: int
    lvm_type: LvmType
    stripes: int | None = None
    stripe_size_bytes: int | None = None
    thin_pool: str | None = None
    tags: tuple[str, ...] = ()

    @classmethod
    def for_placement(cls, placement: Placement, name: str, tags: Sequence[str] = ()) -> LvSpec:
        return cls(
            vg=placement.vg,
            name=name,
            size_bytes=placement.size_bytes,
            lvm_type=placement.lvm_type,
            stripes=placement.stripes,
            stripe_size_bytes=placement.stripe_size_bytes,
            thin_pool=placement.thin_pool,
            tags=tuple(tags),
        )


def _size(size_bytes: int, what: str = "size") -> str:
    if size_bytes <= 0 or size_bytes % _SECTOR:
        raise InvalidArgument(f"{what} must be a positive multiple of {_SECTOR} bytes, got {size_bytes}")
    return f"{size_bytes}b"


def _lv_path(vg: str, name: str) -> str:
    return f"{validate_vg_name(vg)}/{validate_lv_name(name)}"


def _tag_args(option: str, tags: Sequence[str]) -> list[str]:
    args: list[str] = []
    for tag in tags:
        args += [option, validate_tag(tag)]
    return args


def vgs_argv(names: Sequence[str] = ()) -> list[str]:
    return ["vgs", *REPORT_OPTIONS, "-o", ",".join(VG_FIELDS), *(validate_vg_name(n) for n in names)]


def pvs_argv() -> list[str]:
    return ["pvs", *REPORT_OPTIONS, "-o", ",".join(PV_FIELDS)]


def lvs_argv(vg: str | None = None, name: str | None = None, tag: str | None = None) -> list[str]:
    """lvs for one LV (vg and name), one VG, LVs carrying a tag, or everything."""
    argv = ["lvs", *REPORT_OPTIONS, "-o", ",".join(LV_FIELDS)]
    if name is not None:
        if vg is None:
            raise InvalidArgument("an LV name needs its volume group")
        return [*argv, _lv_path(vg, name)]
    if vg is not None:
        argv.append(validate_vg_name(vg))
    if tag is not None:
        argv.append("@" + validate_tag(tag))
    return argv


def fullreport_argv(vg: str | None = None) -> list[str]:
    """One ``lvm fullreport`` for VGs, PVs and LVs at once (segment sections trimmed to one field)."""
    argv = [
        "lvm",
        "fullreport",
        *REPORT_OPTIONS,
        "--configreport",
        "vg",
        "-o",
        ",".join(VG_FIELDS),
        "--configreport",
        "pv",
        "-o",
        ",".join(PV_FIELDS),
        "--configreport",
        "lv",
        "-o",
        ",".join(LV_FIELDS),
        "--configreport",
        "pvseg",
        "-o",
        "pvseg_start",
        "--configreport",
        "seg",
        "-o",
        "seg_start",
    ]
    return [*argv, validate_vg_name(vg)] if vg is not None else argv


def _type_args(spec: LvSpec) -> list[str]:
    match spec.lvm_type:
        case LvmType.LINEAR:
            return ["--type", "linear"]
        case LvmType.STRIPING:
            if spec.stripes is None or not 2 <= spec.stripes <= MAX_STRIPES:
                raise InvalidArgument(f"striping needs 2 to {MAX_STRIPES} stripes, got {spec.stripes}")
            args = ["--type", "striped", "--stripes", str(spec.stripes)]
            if spec.stripe_size_bytes is not None:
                size = spec.stripe_size_bytes
                if size < MIN_STRIPE_SIZE or size & (size - 1):
                    raise InvalidArgument(f"stripe size must be a power of two of at least 4 KiB, got {size}")
                args += ["--stripesize", f"{size // KiB}k"]
            return args
        case LvmType.RAID1:
            return ["--type", "raid1", "--mirrors", "1"]
        case LvmType.THIN:
            if spec.thin_pool is None:
                raise InvalidArgument("a thin volume needs a thin pool")
            return ["--type", "thin", "--thinpool", validate_thin_pool_name(spec.thin_pool)]
    raise InvalidArgument(f"unknown lvm type {spec.lvm_type!r}")


def lvcreate_argv(spec: LvSpec) -> list[str]:
    vg = validate_vg_name(spec.vg)
    name = validate_lv_name(spec.name)
    argv = ["lvcreate", "--yes", *_type_args(spec), "--name", name]
    if spec.lvm_type is LvmType.THIN:
        # Unprovisioned thin blocks read as zeros and the pool zeroes new blocks: nothing to wipe.
        argv += ["--virtualsize", _size(spec.size_bytes)]
    else:
        argv += ["--size", _size(spec.size_bytes), "--wipesignatures", "y", "--zero", "y"]
    return [*argv, *_tag_args("--addtag", spec.tags), vg]


def thin_pool_argv(vg: str, pool: str, size_bytes: int, tags: Sequence[str] = ()) -> list[str]:
    """A thin pool that zeroes newly provisioned blocks, so no thin volume sees an earlier tenant's data."""
    return [
        "lvcreate",
        "--yes",
        "--type",
        "thin-pool",
        "--name",
        validate_thin_pool_name(pool),
        "--size",
        _size(size_bytes),
        "--zero",
        "y",
        *_tag_args("--addtag", tags),
        validate_vg_name(vg),
    ]


def snapshot_argv(vg: str, origin: str, name: str, cow_bytes: int | None, tags: Sequence[str] = ()) -> list[str]:
    """A thick copy-on-write snapshot with ``cow_bytes`` of room, or a thin snapshot when None.

    Thin snapshots get the activation-skip flag cleared so they activate like any other LV.
    """
    argv = ["lvcreate", "--yes", "--snapshot", "--name", validate_lv_name(name)]
    if cow_bytes is None:
        argv += ["--setactivationskip", "n"]
    else:
        argv += ["--size", _size(cow_bytes, "snapshot size")]
    return [*argv, *_tag_args("--addtag", tags), _lv_path(vg, origin)]


def split_snapshot_argv(vg: str, name: str) -> list[str]:
    """Detach a thick snapshot from its origin: its COW store becomes a plain LV that can be wiped."""
    return ["lvconvert", "--yes", "--splitsnapshot", _lv_path(vg, name)]


def lvremove_argv(vg: str, name: str) -> list[str]:
    return ["lvremove", "--yes", _lv_path(vg, name)]


def lvextend_argv(vg: str, name: str, size_bytes: int) -> list[str]:
    return ["lvextend", "--yes", "--size", _size(size_bytes), _lv_path(vg, name)]


def activation_argv(vg: str, name: str, active: bool) -> list[str]:
    if active:
        return ["lvchange", "--activate", "y", "--ignoreactivationskip", _lv_path(vg, name)]
    return ["lvchange", "--activate", "n", _lv_path(vg, name)]


def tags_argv(vg: str, name: str, add: Sequence[str] = (), delete: Sequence[str] = ()) -> list[str]:
    if not add and not delete:
        raise InvalidArgument("no tags to add or delete")
    return ["lvchange", *_tag_args("--addtag", add), *_tag_args("--deltag", delete), _lv_path(vg, name)]


def vgchange_activate_argv(vgs: Sequence[str] = ()) -> list[str]:
    return ["vgchange", "--activate", "y", *(validate_vg_name(vg) for vg in vgs)]
