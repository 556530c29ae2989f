"""The LVM adapter against real lvm2 (2.03 in the node VM): argv, reports, attrs and error texts.

The adapter runs on the host and every command runs in the guest (GuestRunner), so what is proven
here is exactly the argv the adapter builds and the output lvm2 really prints.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from guest_runner import GuestRunner

from localcsi.core.errors import AlreadyExists, FailedPrecondition, NotFound, OutOfRange, ResourceExhausted
from localcsi.core.health import volume_condition
from localcsi.core.model import LogicalVolume, snapshot_from_lv, thin_pools, volume_from_lv
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.params import LvmType, VolumeParams
from localcsi.core.placement import max_volume_bytes, place
from localcsi.core.sizes import MiB
from localcsi.core.snapshots import full_cow_bytes
from localcsi.core.tags import OWNER_TAG, LvKind, LvMetadata, Source, SourceKind, encode_tags
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.lvm import Lvm
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

TWO_PVS = "localcsi-a"
ONE_PV = "localcsi-b"
POOL = "localcsi-thinpool"
NODE = "node-1"


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[1, 1, 1])


@pytest.fixture(scope="module")
def vm(node_vm: NodeVM) -> NodeVM:
    vdb, vdc, vdd = node_vm.data_disks()
    node_vm.check(["pvcreate", "-y", vdb, vdc, vdd])
    node_vm.check(["vgcreate", TWO_PVS, vdb, vdc])
    node_vm.check(["vgcreate", ONE_PV, vdd])
    return node_vm


@pytest.fixture
def lvm(vm: NodeVM) -> Iterator[Lvm]:
    yield Lvm(GuestRunner(vm))
    for vg in (TWO_PVS, ONE_PV):  # every test starts from empty VGs
        vm.check(["lvremove", "-y", vg])


def tags(name: str, size: int, kind: LvKind = LvKind.VOLUME, source: Source | None = None) -> tuple[str, ...]:
    return encode_tags(LvMetadata(kind, name, size, source))


def get(lvm: Lvm, vg: str, name: str) -> LogicalVolume:
    lv = lvm.get_lv(vg, name)
    assert lv is not None, f"{vg}/{name} is missing"
    return lv


def pv_free(lvm: Lvm, vg: str) -> list[int]:
    return [pv.free_bytes for pv in lvm.list_pvs(vg)]


def write(vm: NodeVM, lv: LogicalVolume, mib: int, seek: int = 0) -> None:
    vm.check(["dd", "if=/dev/urandom", f"of={lv.device_path}", "bs=1M", f"count={mib}", f"seek={seek}",
              "oflag=direct", "status=none"])  # fmt: skip


def test_reports_describe_the_vgs_and_one_fullreport_says_the_same(lvm: Lvm) -> None:
    groups = {vg.name: vg for vg in lvm.volume_groups()}
    assert set(groups) >= {TWO_PVS, ONE_PV}
    two = groups[TWO_PVS]
    assert (two.extent_size, two.pv_count, len(two.pvs), two.writable, two.partial) == (4 * MiB, 2, 2, True, False)
    assert two.size_bytes == two.free_bytes == sum(pv.size_bytes for pv in two.pvs)
    assert all(pv.allocatable and pv.size_bytes % (4 * MiB) == 0 for pv in two.pvs)
    lvm.create_lv(LvSpec(ONE_PV, volume_lv_name("r"), 8 * MiB, LvmType.LINEAR, tags=tags("r", 8 * MiB)))
    state = lvm.state()
    assert {vg.name: (vg.free_bytes, len(vg.pvs)) for vg in state.vgs} == {
        vg.name: (vg.free_bytes, len(vg.pvs)) for vg in lvm.volume_groups()
    }
    assert [(lv.vg, lv.name, lv.tags) for lv in state.lvs] == [(lv.vg, lv.name, lv.tags) for lv in lvm.list_lvs()]
    [lv] = lvm.owned_lvs(ONE_PV)
    assert lv.created is not None and lv.kernel_major is not None, "lv_time and maj:min are read"


def test_placement_math_matches_lvm2s_allocator(lvm: Lvm) -> None:
    state = lvm.state()
    vgs, pools = state.vgs, thin_pools(state.lvs)
    two = next(vg for vg in vgs if vg.name == TWO_PVS)
    before = pv_free(lvm, TWO_PVS)

    striped = place(vgs, pools, VolumeParams(vg_name=TWO_PVS, lvm_type=LvmType.STRIPING), 100 * MiB, 0)
    assert (striped.stripes, striped.size_bytes) == (2, 104 * MiB), "rounded up to 2 x 4 MiB extents"
    lvm.create_lv(LvSpec.for_placement(striped, volume_lv_name("s"), tags("s", 100 * MiB)))
    after_striped = pv_free(lvm, TWO_PVS)
    assert [b - a for b, a in zip(before, after_striped, strict=True)] == [52 * MiB, 52 * MiB]

    raid = place(vgs, pools, VolumeParams(vg_name=TWO_PVS, lvm_type=LvmType.RAID1), 64 * MiB, 0)
    lvm.create_lv(LvSpec.for_placement(raid, volume_lv_name("m"), tags("m", 64 * MiB)))
    after_raid = pv_free(lvm, TWO_PVS)
    assert [b - a for b, a in zip(after_striped, after_raid, strict=True)] == [68 * MiB, 68 * MiB], (
        "each raid1 leg takes the size plus one extent of rmeta"
    )
    got = {lv.name: lv for lv in lvm.list_lvs(TWO_PVS)}
    assert got[volume_lv_name("s")].lvm_type is LvmType.STRIPING
    assert got[volume_lv_name("m")].lvm_type is LvmType.RAID1
    assert got[volume_lv_name("m")].size_bytes == 64 * MiB, "hidden rimage/rmeta sub-LVs are not listed"

    fresh = next(vg for vg in lvm.volume_groups() if vg.name == TWO_PVS)
    largest_raid1 = max_volume_bytes(fresh, (), VolumeParams(lvm_type=LvmType.RAID1))
    assert largest_raid1 < two.free_bytes // 2
    lvm.create_lv(LvSpec(TWO_PVS, volume_lv_name("big"), largest_raid1, LvmType.RAID1))
    assert pv_free(lvm, TWO_PVS) == [0, 0], "the largest raid1 that placement promises fills both PVs exactly"

    one = next(vg for vg in lvm.volume_groups() if vg.name == ONE_PV)
    largest = max_volume_bytes(one, (), VolumeParams(lvm_type=LvmType.LINEAR))
    assert largest == one.free_bytes
    lvm.create_lv(LvSpec(ONE_PV, volume_lv_name("full"), largest, LvmType.LINEAR))
    with pytest.raises(ResourceExhausted, match="insufficient free space"):
        lvm.create_lv(LvSpec(ONE_PV, volume_lv_name("more"), 4 * MiB, LvmType.LINEAR))


def test_thin_pool_thin_volumes_and_their_accounting(vm: NodeVM, lvm: Lvm) -> None:
    pool = lvm.ensure_thin_pool(TWO_PVS, POOL, 256 * MiB)
    assert pool.is_thin_pool and pool.attr[7] == "z", "our pools zero new blocks: thin volumes need no wipe"
    assert lvm.ensure_thin_pool(TWO_PVS, POOL, 512 * MiB).size_bytes == 256 * MiB, "an existing pool is kept"
    name = volume_lv_name("t")
    lvm.create_lv(LvSpec(TWO_PVS, name, 384 * MiB, LvmType.THIN, thin_pool=POOL, tags=tags("t", 384 * MiB)))
    thin = get(lvm, TWO_PVS, name)
    assert (thin.is_thin_volume, thin.pool_lv, thin.size_bytes, thin.lvm_type) == (True, POOL, 384 * MiB, LvmType.THIN)
    volume = volume_from_lv(NODE, thin)
    assert volume is not None and volume.name == "t" and volume.thin_pool == POOL
    write(vm, thin, 64)
    [accounted] = thin_pools(lvm.list_lvs(TWO_PVS))
    assert accounted.virtual_bytes == 384 * MiB and 20 < accounted.data_percent < 30
    with pytest.raises(FailedPrecondition, match="thin pool does not exist"):
        lvm.create_lv(LvSpec(TWO_PVS, volume_lv_name("x"), 4 * MiB, LvmType.THIN, thin_pool="nopool"))
    with pytest.raises(FailedPrecondition, match="not a thin pool"):
        lvm.ensure_thin_pool(TWO_PVS, name, 8 * MiB)


def test_thick_snapshots_their_origin_overflow_and_split(vm: NodeVM, lvm: Lvm) -> None:
    origin = volume_lv_name("o")
    lvm.create_lv(LvSpec(ONE_PV, origin, 64 * MiB, LvmType.LINEAR, tags=tags("o", 64 * MiB)))
    source = Source(SourceKind.VOLUME, f"{NODE}/{ONE_PV}/{origin}")
    full = full_cow_bytes(64 * MiB, 4 * MiB)
    snap = snapshot_lv_name("full")
    lvm.create_snapshot(ONE_PV, origin, snap, cow_bytes=full, tags=tags("full", 64 * MiB, LvKind.SNAPSHOT, source))
    cow = get(lvm, ONE_PV, snap)
    assert cow.is_cow_snapshot and cow.origin == origin and cow.origin_size_bytes == 64 * MiB
    assert 64 * MiB < cow.size_bytes <= full, "lvm2 trims the COW room to its maximum usable size"
    snapshot = snapshot_from_lv(NODE, cow)
    assert snapshot is not None and (snapshot.size_bytes, snapshot.source_volume_id) == (64 * MiB, source.id)
    assert get(lvm, ONE_PV, origin).is_cow_origin
    with pytest.raises(FailedPrecondition, match="delete its snapshots"):
        lvm.remove_lv(ONE_PV, origin)

    small = snapshot_lv_name("small")
    lvm.create_snapshot(ONE_PV, origin, small, cow_bytes=4 * MiB)
    write(vm, get(lvm, ONE_PV, origin), 16)
    overflowed = get(lvm, ONE_PV, small)
    assert overflowed.is_invalid_snapshot, f"lv_attr {overflowed.attr}"
    condition = volume_condition(overflowed)
    assert condition.abnormal and "overflowed" in condition.message
    assert not get(lvm, ONE_PV, snap).is_invalid_snapshot, "the full-size snapshot cannot overflow"

    lvm.split_snapshot(ONE_PV, small)
    split = get(lvm, ONE_PV, small)
    assert not split.is_cow_snapshot and split.origin == "" and split.is_active
    assert lvm.remove_lv(ONE_PV, small)
    lvm.split_snapshot(ONE_PV, snap)
    assert get(lvm, ONE_PV, snap).tags == cow.tags, "tags survive the split"
    assert not get(lvm, ONE_PV, origin).is_cow_origin
    assert lvm.remove_lv(ONE_PV, snap) and lvm.remove_lv(ONE_PV, origin)


def test_thin_snapshots_activate_like_volumes_and_outlive_their_origin(vm: NodeVM, lvm: Lvm) -> None:
    lvm.ensure_thin_pool(TWO_PVS, POOL, 128 * MiB)
    origin = volume_lv_name("to")
    lvm.create_lv(LvSpec(TWO_PVS, origin, 64 * MiB, LvmType.THIN, thin_pool=POOL))
    snap = snapshot_lv_name("ts")
    lvm.create_snapshot(TWO_PVS, origin, snap, cow_bytes=None, tags=[OWNER_TAG])
    thin = get(lvm, TWO_PVS, snap)
    assert thin.is_thin_volume and thin.origin == origin and thin.is_active and not thin.skips_activation
    [pool] = thin_pools(lvm.list_lvs(TWO_PVS))
    assert pool.virtual_bytes == 128 * MiB, "a thin snapshot counts in full against the pool"
    vm.check(["vgchange", "--activate", "n", TWO_PVS])
    assert not get(lvm, TWO_PVS, snap).is_active
    lvm.activate_vgs(TWO_PVS)
    assert get(lvm, TWO_PVS, snap).is_active, "vgchange -ay (as after a reboot) activates thin snapshots"
    assert lvm.remove_lv(TWO_PVS, origin)
    assert get(lvm, TWO_PVS, snap).origin == "", "a thin snapshot is independent of its origin"


def test_extend_in_every_case_lvm2_has(lvm: Lvm) -> None:
    name = volume_lv_name("e")
    lvm.create_lv(LvSpec(ONE_PV, name, 64 * MiB, LvmType.LINEAR))
    lvm.extend_lv(ONE_PV, name, 128 * MiB)
    lvm.extend_lv(ONE_PV, name, 128 * MiB)  # the same size again: an idempotent retry
    assert get(lvm, ONE_PV, name).size_bytes == 128 * MiB
    with pytest.raises(OutOfRange):
        lvm.extend_lv(ONE_PV, name, 64 * MiB)
    with pytest.raises(ResourceExhausted):
        lvm.extend_lv(ONE_PV, name, 64 * 1024 * MiB)
    with pytest.raises(NotFound):
        lvm.extend_lv(ONE_PV, volume_lv_name("missing"), 128 * MiB)
    lvm.create_snapshot(ONE_PV, name, snapshot_lv_name("e"), cow_bytes=8 * MiB)
    with pytest.raises(FailedPrecondition, match="only while it is not in use"):
        lvm.extend_lv(ONE_PV, name, 192 * MiB)
    lvm.deactivate(ONE_PV, name)
    lvm.extend_lv(ONE_PV, name, 192 * MiB)
    lvm.activate(ONE_PV, name)
    assert get(lvm, ONE_PV, name).size_bytes == 192 * MiB and get(lvm, ONE_PV, name).is_active


def test_errors_lvm2_prints_become_csi_codes(vm: NodeVM, lvm: Lvm) -> None:
    name = volume_lv_name("dup")
    lvm.create_lv(LvSpec(ONE_PV, name, 8 * MiB, LvmType.LINEAR))
    with pytest.raises(AlreadyExists):
        lvm.create_lv(LvSpec(ONE_PV, name, 8 * MiB, LvmType.LINEAR))
    with pytest.raises(ResourceExhausted):
        lvm.create_lv(LvSpec(ONE_PV, volume_lv_name("x"), 8 * MiB, LvmType.STRIPING, stripes=3))
    with pytest.raises(ResourceExhausted):
        lvm.create_lv(LvSpec(ONE_PV, volume_lv_name("x"), 8 * MiB, LvmType.RAID1))
    assert lvm.get_lv(ONE_PV, volume_lv_name("missing")) is None
    assert lvm.remove_lv(ONE_PV, volume_lv_name("missing")) is False
    with pytest.raises(NotFound):
        lvm.list_vgs("localcsi-none")
    lv = get(lvm, ONE_PV, name)
    vm.check(["mkfs.ext4", "-q", lv.device_path])
    vm.check(["mkdir", "-p", "/mnt/busy"])
    vm.check(["mount", lv.device_path, "/mnt/busy"])
    try:
        with pytest.raises(FailedPrecondition):
            lvm.remove_lv(ONE_PV, name)
        assert get(lvm, ONE_PV, name).is_open
    finally:
        vm.check(["umount", "/mnt/busy"])
    assert lvm.remove_lv(ONE_PV, name)


def test_tags_and_activation(vm: NodeVM, lvm: Lvm) -> None:
    name = volume_lv_name("tags")
    lvm.create_lv(LvSpec(ONE_PV, name, 8 * MiB, LvmType.LINEAR, tags=tags("tags", 8 * MiB)))
    lvm.create_lv(LvSpec(ONE_PV, volume_lv_name("untagged"), 8 * MiB, LvmType.LINEAR))
    assert [lv.name for lv in lvm.owned_lvs(ONE_PV)] == [name]
    lvm.add_tags(ONE_PV, name, ["localcsi.io/state=creating"])
    assert "localcsi.io/state=creating" in get(lvm, ONE_PV, name).tags
    lvm.del_tags(ONE_PV, name, ["localcsi.io/state=creating"])
    assert set(get(lvm, ONE_PV, name).tags) == set(tags("tags", 8 * MiB))
    lv = get(lvm, ONE_PV, name)
    device = vm.check(["stat", "-L", "-c", "%t:%T", lv.device_path]).stdout.strip()
    assert device == f"{lv.kernel_major:x}:{lv.kernel_minor:x}", "maj:min are the device's, for io.max"
    lvm.deactivate(ONE_PV, name)
    inactive = get(lvm, ONE_PV, name)
    assert not inactive.is_active and inactive.kernel_major is None
    lvm.activate(ONE_PV, name)
    assert get(lvm, ONE_PV, name).is_active
