"""The agent's pure core: filters, the spec, capacity, VG init planning and the status layout."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.model import PhysicalVolume, VolumeGroup
from localcsi.core.nodestorage import (
    DEFAULT_DEVICE_PATTERNS,
    BlockDevice,
    DiskCondition,
    NodeInventory,
    ReservedSpace,
    in_device_scope,
    parse_spec,
    reserved_bytes,
    vg_capacity,
)
from localcsi.core.nodestorage_init import devices_to_probe, plan_vg_init
from localcsi.core.sizes import GiB, MiB

pytestmark = pytest.mark.unit

EXTENT = 4 * MiB


def disk(name: str, size: int = 10 * GiB, *, read_only: bool = False, **kw: Any) -> BlockDevice:
    return BlockDevice(name, f"/dev/{name}", size, "disk", rotational=True, read_only=read_only, **kw)


def part(name: str, parent: str, size: int = GiB, **kw: Any) -> BlockDevice:
    return BlockDevice(name, f"/dev/{name}", size, "part", rotational=True, read_only=False, parent=parent, **kw)


def group(
    name: str, size: int = 10 * GiB, free: int | None = None, pvs: tuple[str, ...] = (), **kw: Any
) -> VolumeGroup:
    free = size if free is None else free
    physical = tuple(PhysicalVolume(p, name, size // max(len(pvs), 1), free // max(len(pvs), 1)) for p in pvs)
    return VolumeGroup(name, size, free, EXTENT, len(pvs) or 1, pvs=physical, **kw)


def scope(*devices: BlockDevice) -> frozenset[str]:
    return frozenset(d.path for d in devices)


# -- filters and the spec ------------------------------------------------------------------------


def test_include_then_exclude_with_seed_style_device_patterns() -> None:
    spec = parse_spec({"listConfig": {"devices": {"include": ["/dev/vd[a-d]+"], "exclude": ["/dev/vda", "/dev/vdb"]}}})
    picked = [n for n in ("vda", "vdb", "vdc", "vdd", "vde", "vdc1") if spec.devices.accepts(n, f"/dev/{n}")]
    assert picked == ["vdc", "vdd"]


def test_kernel_name_patterns_match_too_and_a_pattern_must_match_the_whole_name() -> None:
    spec = parse_spec(
        {"listConfig": {"vgs": {"include": ["share", "pool-[0-9]+"]}, "devices": {"include": ["vd[c-d]"]}}}
    )
    assert [n for n in ("share", "share2", "myshare", "pool-1", "pool-x") if spec.vgs.accepts(n)] == ["share", "pool-1"]
    assert spec.devices.accepts("vdc", "/dev/vdc") and not spec.devices.accepts("vdb", "/dev/vdb")


def test_an_empty_include_selects_nothing() -> None:
    spec = parse_spec({"listConfig": {"vgs": {"exclude": ["x"]}}})
    assert not spec.vgs.accepts("anything") and not spec.devices.accepts("vdb", "/dev/vdb")


def test_a_bad_regex_is_reported_and_selects_nothing_from_that_list_only() -> None:
    spec = parse_spec({"listConfig": {"vgs": {"include": ["ok", "(unclosed"]}, "devices": {"include": [".*"]}}})
    assert not spec.vgs.accepts("ok") and spec.devices.accepts("vdb")
    assert len(spec.problems) == 1 and "(unclosed" in spec.problems[0] and "vgs.include" in spec.problems[0]


def test_reserved_space_takes_sizes_quantities_and_percents_and_reports_bad_entries() -> None:
    spec = parse_spec(
        {
            "reservedSpace": [
                {"vgName": "a", "size": "10Gi"},
                {"vgName": "b", "size": 1024, "percent": 5},
                {"vgName": "c", "percent": 150},
                {"vgName": "d", "size": "-1Gi"},
                {"size": 5},
            ]
        }
    )
    assert spec.reserved == (ReservedSpace("a", 10 * GiB, 0.0), ReservedSpace("b", 1024, 5.0))
    assert len(spec.problems) == 3
    assert any("percent" in p and "150" in p for p in spec.problems)
    assert any("negative" in p for p in spec.problems) and any("vgName" in p for p in spec.problems)


def test_vgs_to_init_need_a_name_and_device_paths() -> None:
    spec = parse_spec(
        {"resourceToBeInited": {"vgs": [{"name": "p0", "devices": ["/dev/vdb"]}, {"devices": ["/dev/x"]}]}}
    )
    assert [(v.name, v.devices) for v in spec.vgs_to_init] == [("p0", ("/dev/vdb",))]
    assert spec.problems and "resourceToBeInited.vgs[1]" in spec.problems[0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sda", True), ("vdb", True), ("xvdf", True), ("nvme0n1", True), ("vdaa", True),
     ("loop0", False), ("dm-0", False), ("sr0", False), ("md0", False), ("nbd0", False)],
)  # fmt: skip
def test_default_device_scope(name: str, expected: bool) -> None:
    device = disk(name)
    assert in_device_scope(device, {name: device}, DEFAULT_DEVICE_PATTERNS) is expected


def test_partitions_are_in_scope_with_their_disk() -> None:
    disks = {"nvme0n1": disk("nvme0n1"), "loop0": disk("loop0")}
    assert in_device_scope(part("nvme0n1p2", "nvme0n1"), disks, DEFAULT_DEVICE_PATTERNS)
    assert not in_device_scope(part("loop0p1", "loop0"), disks, DEFAULT_DEVICE_PATTERNS)


# -- capacity -----------------------------------------------------------------------------------


def test_percent_reservation_is_not_zero() -> None:
    vg = group("pool", 100 * GiB)
    assert reserved_bytes(vg, [ReservedSpace("pool", percent=10)]) == 10 * GiB
    odd = group("pool", 1001 * EXTENT)
    assert reserved_bytes(odd, [ReservedSpace("pool", percent=3)]) == 31 * EXTENT  # 30.03 extents, rounded up


def test_the_larger_of_size_and_percent_wins_and_other_vgs_do_not_count() -> None:
    vg = group("pool", 100 * GiB)
    both = [ReservedSpace("pool", 20 * GiB, 10), ReservedSpace("other", 90 * GiB)]
    assert reserved_bytes(vg, both) == 20 * GiB
    assert reserved_bytes(vg, [ReservedSpace("pool", GiB, 10)]) == 10 * GiB
    assert reserved_bytes(vg, [ReservedSpace("pool", 500 * GiB)]) == 100 * GiB  # never more than the VG


@given(
    total_extents=st.integers(1, 10**6),
    size=st.integers(0, 2**42),
    percent=st.integers(0, 90),
)
def test_reservation_bounds(total_extents: int, size: int, percent: int) -> None:
    vg = group("g", total_extents * EXTENT)
    held = reserved_bytes(vg, [ReservedSpace("g", size, percent)])
    wanted = max(Fraction(size), Fraction(vg.size_bytes * percent, 100))
    assert held % EXTENT == 0 or held == vg.size_bytes
    assert held == vg.size_bytes or wanted <= held < wanted + EXTENT


def test_allocatable_is_free_minus_reserved_and_never_negative() -> None:
    inventory = NodeInventory()
    vg = group("pool", 100 * GiB, free=30 * GiB)
    capacity = vg_capacity(vg, inventory, [ReservedSpace("pool", 10 * GiB)])
    assert (capacity.total, capacity.available, capacity.reserved, capacity.allocatable) == (
        100 * GiB, 30 * GiB, 10 * GiB, 20 * GiB,
    )  # fmt: skip
    assert capacity.condition is DiskCondition.READY
    full = vg_capacity(vg, inventory, [ReservedSpace("pool", percent=50)])
    assert full.allocatable == 0 and full.condition is DiskCondition.FULL and "after the reserve" in full.reason


def test_full_below_one_extent_or_the_threshold() -> None:
    inventory = NodeInventory()
    assert vg_capacity(group("g", GiB, free=EXTENT - 1), inventory, []).condition is DiskCondition.FULL
    assert vg_capacity(group("g", GiB, free=EXTENT), inventory, []).condition is DiskCondition.READY
    assert vg_capacity(group("g", GiB, free=EXTENT), inventory, [], 8 * MiB).condition is DiskCondition.FULL


def test_fault_for_missing_pvs_partial_vg_and_read_only_devices() -> None:
    vg = group("g", GiB, pvs=("/dev/vdb", "/dev/vdc"))
    missing = replace(vg, pvs=(vg.pvs[0], replace(vg.pvs[1], attr="a-m")))
    fault = vg_capacity(missing, NodeInventory(), [])
    assert fault.condition is DiskCondition.FAULT and "/dev/vdc" in fault.reason
    assert vg_capacity(replace(vg, attr="wz-pn-"), NodeInventory(), []).condition is DiskCondition.FAULT
    read_only = NodeInventory(devices=(disk("vdb"), disk("vdc", read_only=True)))
    ro = vg_capacity(vg, read_only, [])
    assert ro.condition is DiskCondition.FAULT and "read-only: /dev/vdc" in ro.reason
    assert vg_capacity(vg, NodeInventory(devices=(disk("vdb"), disk("vdc"))), []).condition is DiskCondition.READY


# -- VG initialisation ----------------------------------------------------------------------------


def init_spec(*vgs: tuple[str, list[str]], include: str = ".*", devices_include: str | None = None) -> Any:
    listing: dict[str, Any] = {"vgs": {"include": [include]}}
    if devices_include:
        listing["devices"] = {"include": [devices_include]}
    return parse_spec(
        {"listConfig": listing, "resourceToBeInited": {"vgs": [{"name": n, "devices": d} for n, d in vgs]}}
    )


def test_a_blank_device_is_planned_and_an_existing_vg_is_left_alone() -> None:
    vdb, vdc = disk("vdb"), disk("vdc")
    inventory = NodeInventory(devices=(vdb, vdc), vgs=(group("have", pvs=("/dev/vdc",)),))
    spec = init_spec(("pool0", ["/dev/vdb"]), ("have", ["/dev/vdc"]))
    assert devices_to_probe(spec, inventory) == ("/dev/vdb",)
    plan = plan_vg_init(spec, inventory, {"/dev/vdb": None}, scope(vdb, vdc))
    assert [(c.name, c.devices) for c in plan.create] == [("pool0", ("/dev/vdb",))]
    assert plan.existing == ("have",) and plan.refusals == ()


REFUSED = [
    (disk("vdb", read_only=True), {}, "read-only"),
    (disk("vdb", partitions=("vdb1",)), {}, "partitions (vdb1)"),
    (disk("vdb", holders=("dm-3",)), {}, "in use by dm-3"),
    (disk("vdb", mountpoint="/data"), {}, "mounted at /data"),
    (disk("vdb", mountpoint="[SWAP]"), {}, "mounted at [SWAP]"),
    (disk("vdb"), {"/dev/vdb": "ext4 (filesystem)"}, "blkid finds ext4 (filesystem)"),
    (disk("vdb"), {"/dev/vdb": "dos (partition table)"}, "wipefs"),
]


@pytest.mark.parametrize(("device", "signatures", "reason"), REFUSED)
def test_unsafe_devices_refuse_the_whole_vg_with_a_reason(
    device: BlockDevice, signatures: dict[str, str], reason: str
) -> None:
    vdc = disk("vdc")
    inventory = NodeInventory(devices=(device, vdc))
    plan = plan_vg_init(
        init_spec(("pool0", ["/dev/vdb", "/dev/vdc"])),
        inventory,
        {"/dev/vdb": None, "/dev/vdc": None, **signatures},
        scope(device, vdc),
    )
    assert plan.create == ()
    [refusal] = plan.refusals
    assert (refusal.vg, refusal.device) == ("pool0", "/dev/vdb") and reason in refusal.reason
    assert "pool0" in str(refusal) and "/dev/vdb" in str(refusal)


def test_pvs_with_or_without_a_vg_are_refused() -> None:
    vdb, vdc = disk("vdb"), disk("vdc")
    inventory = NodeInventory(
        devices=(vdb, vdc),
        vgs=(group("other", pvs=("/dev/vdb",)),),
        free_pvs=(PhysicalVolume("/dev/vdc", "", GiB, GiB),),
    )
    plan = plan_vg_init(init_spec(("a", ["/dev/vdb"]), ("b", ["/dev/vdc"])), inventory, {}, scope(vdb, vdc))
    reasons = {r.device: r.reason for r in plan.refusals}
    assert "volume group other" in reasons["/dev/vdb"] and "pvremove" in reasons["/dev/vdc"]


def test_unknown_unprobed_out_of_scope_and_offered_devices_are_refused() -> None:
    loop, vdb, vdc = disk("loop0"), disk("vdb"), disk("vdc")
    inventory = NodeInventory(devices=(loop, vdb, vdc))
    spec = init_spec(("a", ["/dev/nope"]), ("b", ["/dev/loop0"]), ("c", ["/dev/vdb"]), ("d", ["/dev/vdc"]))
    plan = plan_vg_init(spec, inventory, {"/dev/loop0": None, "/dev/vdc": None}, scope(vdb, vdc), scope(vdc))
    reasons = {r.vg: r.reason for r in plan.refusals}
    assert "not found" in reasons["a"] and "scope" in reasons["b"]
    assert "probed" in reasons["c"] and "exclusive device" in reasons["d"] and plan.create == ()


def test_a_device_listed_for_two_vgs_goes_to_the_first_only() -> None:
    vdb = disk("vdb")
    plan = plan_vg_init(init_spec(("a", ["/dev/vdb"]), ("b", ["vdb"])), NodeInventory(devices=(vdb,)),
                        {"/dev/vdb": None}, scope(vdb))  # fmt: skip
    assert [c.name for c in plan.create] == ["a"]
    assert [(r.vg, r.reason) for r in plan.refusals] == [("b", "also listed for volume group a")]


def test_vg_names_must_be_valid_and_selected_by_list_config() -> None:
    vdb = disk("vdb")
    inventory = NodeInventory(devices=(vdb,))
    bad = plan_vg_init(init_spec(("-x", ["/dev/vdb"])), inventory, {"/dev/vdb": None}, scope(vdb))
    assert bad.refusals[0].device == "" and "starts with '-'" in bad.refusals[0].reason
    unused = plan_vg_init(init_spec(("pool0", ["/dev/vdb"]), include="^share$"), inventory, {"/dev/vdb": None},
                          scope(vdb))  # fmt: skip
    assert unused.create == () and "listConfig.vgs" in unused.refusals[0].reason
