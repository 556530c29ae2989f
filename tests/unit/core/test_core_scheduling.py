import random
from fractions import Fraction

import pytest

from localcsi.core.params import LvmType, MediaType, VolumeParams, VolumeType
from localcsi.core.scheduling import (
    ACCOUNTING_EXTENT,
    DiskReport,
    NodeReport,
    Pin,
    PodDemand,
    Usage,
    VgReport,
    VolumeRequest,
    best_fit,
    lvm_charge,
    node_capacity,
    volume_request,
    with_usage_changed,
)
from localcsi.core.sizes import GiB, MiB

pytestmark = pytest.mark.unit


def test_linear_charge_rounds_up_to_the_accounting_extent() -> None:
    assert lvm_charge(GiB, VolumeParams()) == GiB
    assert lvm_charge(GiB + 1, VolumeParams()) == GiB + ACCOUNTING_EXTENT
    assert lvm_charge(0, VolumeParams()) == ACCOUNTING_EXTENT


def test_raid1_takes_two_legs_and_their_metadata_extents() -> None:
    assert lvm_charge(GiB, VolumeParams(lvm_type=LvmType.RAID1)) == 2 * (GiB + ACCOUNTING_EXTENT)


def test_thin_counts_its_full_size_unless_an_overprovisioning_ratio_is_given() -> None:
    thin = VolumeParams(lvm_type=LvmType.THIN, thin_pool="pool")
    assert lvm_charge(4 * GiB, thin) == 4 * GiB
    ratio = VolumeParams(lvm_type=LvmType.THIN, thin_pool="pool", overprovisioning_ratio=Fraction(4))
    assert lvm_charge(4 * GiB, ratio) == GiB
    odd = VolumeParams(lvm_type=LvmType.THIN, thin_pool="pool", overprovisioning_ratio=Fraction(3))
    assert lvm_charge(GiB, odd) % ACCOUNTING_EXTENT == 0
    assert lvm_charge(GiB, odd) >= GiB / 3


def test_volume_request_carries_the_class_parameters() -> None:
    request = volume_request("k", "PVC a/b", 3 * GiB, VolumeParams(vg_name="vg1", lvm_type=LvmType.RAID1))
    assert (request.vg_name, request.charge_bytes) == ("vg1", 2 * (3 * GiB + ACCOUNTING_EXTENT))
    device = volume_request("d", "PVC a/d", 3 * GiB, VolumeParams(VolumeType.DEVICE, media_type=MediaType.SSD))
    assert (device.volume_type, device.charge_bytes, device.media_type) == (VolumeType.DEVICE, 0, MediaType.SSD)


def test_demand_groups_volumes_once_largest_unnamed_first() -> None:
    small = VolumeRequest("s", "PVC s", GiB)
    big = VolumeRequest("b", "PVC b", 5 * GiB)
    named = VolumeRequest("n", "PVC n", GiB, vg_name="vg1")
    disk = VolumeRequest("d", "PVC d", GiB, volume_type=VolumeType.DEVICE)
    demand = PodDemand((small, named, big, disk))
    assert demand.unnamed == (big, small)
    assert dict(demand.named) == {"vg1": (named,)}
    assert demand.exclusive == (disk,)
    assert demand.lvm_bytes == 7 * GiB
    assert not demand.empty
    assert PodDemand().empty
    assert not PodDemand(pins=(Pin("n1", "bound"),)).empty


def _report(*vgs: VgReport, disks: tuple[DiskReport, ...] = (), lv_keys: frozenset[str] = frozenset()) -> NodeReport:
    return NodeReport("n1", vgs, disks, lv_keys)


def test_capacity_subtracts_volumes_the_report_does_not_include_yet() -> None:
    report = _report(VgReport("vg0", 100 * GiB, 40 * GiB), lv_keys=frozenset({"csi-old"}))
    usages = [Usage("csi-old", 10 * GiB, "vg0"), Usage("csi-new", 5 * GiB, "vg0")]
    cap = node_capacity(report, usages)
    assert cap.vg_free == {"vg0": 35 * GiB}
    assert (cap.size_bytes, cap.free_bytes) == (100 * GiB, 35 * GiB)


def test_usages_on_vgs_the_report_does_not_have_are_ignored() -> None:
    cap = node_capacity(_report(VgReport("vg0", 10 * GiB, 10 * GiB)), [Usage("csi-x", GiB, "elsewhere")])
    assert cap.vg_free == {"vg0": 10 * GiB}


def test_best_fit_takes_the_vg_left_with_least_room_ties_by_name() -> None:
    room = {"c": 9, "b": 5, "a": 5}
    assert best_fit(room, 4) == "a"  # b and a both left with 1: the smaller name
    assert room == {"c": 9, "b": 5, "a": 1}
    assert best_fit(room, 6) == "c"
    assert best_fit(room, 6) is None
    assert room == {"c": 3, "b": 5, "a": 1}  # a charge that fits nowhere changes nothing


def test_committed_volumes_without_a_vg_take_the_best_fitting_vg() -> None:
    report = _report(VgReport("big", 100 * GiB, 50 * GiB), VgReport("small", 10 * GiB, 6 * GiB))
    cap = node_capacity(report, [Usage("csi-a", 5 * GiB), Usage("csi-b", 4 * GiB)])
    # largest first: 5 GiB fits small best (1 left), 4 GiB then only fits big
    assert cap.vg_free == {"big": 46 * GiB, "small": GiB}


def test_a_committed_volume_that_fits_nowhere_still_counts_against_the_roomiest_vg() -> None:
    report = _report(VgReport("a", 10 * GiB, 2 * GiB), VgReport("b", 10 * GiB, 3 * GiB))
    cap = node_capacity(report, [Usage("csi-huge", 8 * GiB)])
    assert cap.vg_free == {"a": 2 * GiB, "b": -5 * GiB}


def test_vgs_with_a_problem_are_not_usable_and_say_why() -> None:
    report = _report(VgReport("ok", 10 * GiB, 10 * GiB), VgReport("bad", 10 * GiB, 10 * GiB, "condition DiskFault"))
    cap = node_capacity(report, [])
    assert cap.vg_free == {"ok": 10 * GiB}
    assert cap.vg_problems == {"bad": "condition DiskFault"}
    assert cap.size_bytes == 10 * GiB


def test_exclusive_disks_in_use_are_not_free() -> None:
    disks = (
        DiskReport("/dev/sdb", VolumeType.DEVICE, 100 * GiB, MediaType.HDD),
        DiskReport("/dev/sdc", VolumeType.DEVICE, 200 * GiB, MediaType.SSD),
        DiskReport("/dev/sdd", VolumeType.DEVICE, 300 * GiB, MediaType.SSD),
        DiskReport("/dev/sde", VolumeType.DEVICE, 300 * GiB, problem="condition DiskFault"),
        DiskReport("/mnt/a", VolumeType.MOUNTPOINT, 50 * GiB),
    )
    usages = [
        Usage("pv-1", volume_type=VolumeType.DEVICE, disk="/dev/sdb"),
        # disk not known yet: takes the smallest matching one
        Usage("pv-2", volume_type=VolumeType.DEVICE, size_bytes=150 * GiB, media_type=MediaType.SSD),
    ]
    cap = node_capacity(_report(disks=disks), usages)
    assert [d.name for d in cap.free_disks] == ["/mnt/a", "/dev/sdd"]
    assert cap.disk_counts == {VolumeType.DEVICE: 3, VolumeType.MOUNTPOINT: 1}


def test_exclusive_usage_already_in_the_report_is_not_subtracted_twice() -> None:
    disks = (DiskReport("/dev/sdb", VolumeType.DEVICE, GiB),)
    report = _report(disks=disks, lv_keys=frozenset({"known"}))
    cap = node_capacity(report, [Usage("known", volume_type=VolumeType.DEVICE, size_bytes=MiB)])
    assert [d.name for d in cap.free_disks] == ["/dev/sdb"]


def _random_usage(rng: random.Random, key: str, vgs: list[str]) -> Usage:
    if rng.random() < 0.15:
        return Usage(key, volume_type=VolumeType.DEVICE, size_bytes=GiB)
    vg = rng.choice([None, "elsewhere", *vgs])
    return Usage(key, rng.randint(1, 20) * GiB, vg)


@pytest.mark.parametrize("seed", range(5))
def test_a_changed_usage_patches_the_capacity_as_a_recount_would(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 (test data)
    patched = 0
    for _ in range(400):
        vgs = rng.sample(["vg0", "vg1"], rng.randint(0, 2))
        keys = [f"csi-{i}" for i in range(6)]
        report = _report(*(VgReport(vg, 100 * GiB, 60 * GiB) for vg in vgs), lv_keys=frozenset(rng.sample(keys, 2)))
        usages = {key: _random_usage(rng, key, vgs) for key in rng.sample(keys, rng.randint(0, 5))}
        key = rng.choice(keys)
        before = usages.get(key)
        after = _random_usage(rng, key, vgs) if rng.random() < 0.7 else None
        cap = node_capacity(report, usages.values())
        if after is None:
            usages.pop(key, None)
        else:
            usages[key] = after
        result = with_usage_changed(cap, report, before, after)
        if result is None:  # only node_capacity can tell: several VGs, or a disk
            assert len(vgs) > 1 or any(u is not None and u.volume_type is VolumeType.DEVICE for u in (before, after))
            continue
        patched += 1
        assert result == node_capacity(report, usages.values())
        assert result.used_bytes == result.size_bytes - result.free_bytes  # derived fields follow
        assert result.single_vg_free == (result.free_bytes if result.single_vg else 0)
    assert patched > 100
