import pytest
from hypothesis import given
from hypothesis import strategies as st
from scheduling_factories import cap, device, disk, disk_cap, held, pvc

from localcsi.core.params import MediaType, VolumeType
from localcsi.core.scheduling import (
    ACCOUNTING_EXTENT,
    NodeReport,
    Pin,
    PodDemand,
    VgReport,
    VolumeRequest,
    node_capacity,
)
from localcsi.core.scheduling_fit import NO_REPORT, Charge, Fitter, Held, assignment, fit
from localcsi.core.sizes import GiB

pytestmark = pytest.mark.unit


def test_all_volumes_of_a_pod_are_counted_together() -> None:
    # open-local #158: each 6 GiB volume fits a 10 GiB node alone, the pair does not
    node = cap(10)
    assert fit(PodDemand((pvc("a", 6),)), node).ok
    both = fit(PodDemand((pvc("a", 6), pvc("b", 6))), node)
    assert not both.ok
    assert both.reason == "localcsi: no VG has room for PVC ns/b (6 GiB) besides PVC ns/a (6 GiB)"


def test_a_fit_says_where_each_volume_goes() -> None:
    result = fit(PodDemand((pvc("a", 2), pvc("b", 3))), cap(50, 4))
    assert result.ok
    assert sorted((c.key, c.vg, c.charge_bytes) for c in result.charges) == [
        ("key-a", "vg0", 2 * GiB),
        ("key-b", "vg1", 3 * GiB),  # best fit: the VG left with the least room
    ]


def test_volumes_are_spread_over_vgs_when_none_holds_them_all() -> None:
    result = fit(PodDemand((pvc("a", 6), pvc("b", 6))), cap(7, 7))
    assert result.ok
    assert {c.vg for c in result.charges} == {"vg0", "vg1"}


def test_a_named_vg_must_hold_all_of_its_volumes() -> None:
    node = cap(10, 50, names=("fast", "slow"))
    assert fit(PodDemand((pvc("a", 6, "fast"), pvc("b", 3, "fast"))), node).ok
    result = fit(PodDemand((pvc("a", 6, "fast"), pvc("b", 6, "fast"))), node)
    assert result.reason == "localcsi: VG fast lacks room for PVC ns/a (6 GiB), PVC ns/b (6 GiB)"


def test_named_volumes_are_placed_before_the_unnamed_ones_look_for_room() -> None:
    node = cap(10, 5, names=("fast", "slow"))
    result = fit(PodDemand((pvc("free", 5), pvc("pinned", 8, "fast"))), node)
    assert result.ok
    assert {c.key: c.vg for c in result.charges} == {"key-pinned": "fast", "key-free": "slow"}


def test_a_named_vg_that_is_missing_or_broken_says_so() -> None:
    missing = fit(PodDemand((pvc("a", 1, "ssd"),)), cap(10))
    assert missing.reason == "localcsi: VG ssd (vgName of PVC ns/a (1 GiB)) is not on this node"
    report = NodeReport("n1", (VgReport("ssd", 10 * GiB, 10 * GiB, "condition DiskFault"),))
    broken = fit(PodDemand((pvc("a", 1, "ssd"),)), node_capacity(report, []))
    assert broken.reason == "localcsi: VG ssd (vgName of PVC ns/a (1 GiB)) is not usable: condition DiskFault"


def test_a_node_without_vgs_or_report() -> None:
    assert fit(PodDemand((pvc("a", 1),)), cap()).reason == "localcsi: this node has no usable LVM volume group"
    assert fit(PodDemand((pvc("a", 1),)), None).reason == NO_REPORT


def test_space_held_for_other_pods_is_not_offered_again() -> None:
    demand = PodDemand((pvc("a", 6),))
    node = cap(10)
    assert fit(demand, node, held(vg0=3)).ok
    refused = fit(demand, node, held(vg0=5))
    assert refused.reason is not None
    assert refused.reason.endswith("while space is held for other pods being scheduled; retry follows")
    # when the node is too small anyway, the hold is not blamed
    assert "held" not in str(fit(PodDemand((pvc("a", 20),)), node, held(vg0=5)).reason)


def test_pins_fail_every_other_node_with_the_volume_named() -> None:
    demand = PodDemand((pvc("new", 1),), (Pin("n1", "PVC ns/old is bound to a volume on node n1"),))
    assert fit(demand, cap(10, node="n1")).ok
    assert fit(demand, cap(10, node="n2")).reason == "localcsi: PVC ns/old is bound to a volume on node n1"
    assert fit(demand, None).reason == "localcsi: PVC ns/old is bound to a volume on node n1"


def test_a_pod_with_only_pins_needs_no_report_on_its_node() -> None:
    demand = PodDemand(pins=(Pin("n1", "bound"),))
    result = fit(demand, None)
    assert result.reason == "localcsi: bound"
    assert fit(demand, cap(0, node="n1")).ok


def test_problems_fail_every_node() -> None:
    demand = PodDemand((pvc("a", 1),), problems=("VolumeSnapshot ns/s is not ready", "class x is invalid"))
    assert fit(demand, cap(100)).reason == "localcsi: VolumeSnapshot ns/s is not ready; class x is invalid"


def test_device_volumes_need_one_disk_each_big_enough_and_of_the_media_asked() -> None:
    node = disk_cap(disk("/dev/sdb", 100, MediaType.HDD), disk("/dev/sdc", 200, MediaType.SSD))
    result = fit(PodDemand((device("a", 150, MediaType.SSD), device("b", 50))), node)
    assert {c.key: c.disk for c in result.charges} == {"key-a": "/dev/sdc", "key-b": "/dev/sdb"}
    refused = fit(PodDemand((device("a", 50, MediaType.SSD), device("b", 50, MediaType.SSD))), node)
    assert refused.reason == (
        "localcsi: no a free ssd disk of at least 50 GiB for PVC ns/b (2 exclusive volumes in all)"
    )


def test_device_matching_finds_an_assignment_a_greedy_pick_would_miss() -> None:
    # the small unconstrained volume must not take the only ssd
    node = disk_cap(disk("/dev/ssd", 100, MediaType.SSD), disk("/dev/hdd", 500, MediaType.HDD))
    result = fit(PodDemand((device("any", 10), device("fast", 50, MediaType.SSD))), node)
    assert {c.key: c.disk for c in result.charges} == {"key-any": "/dev/hdd", "key-fast": "/dev/ssd"}


def test_held_disks_are_not_offered_again() -> None:
    node = disk_cap(disk("/dev/sdb", 100))
    other = Held()
    other.add(assignment([Charge("other", disk="/dev/sdb")]))
    result = fit(PodDemand((device("a", 10),)), node, other)
    assert result.reason is not None
    assert result.reason.endswith("while space is held for other pods being scheduled; retry follows")


def test_mount_points_are_a_separate_pool_from_devices() -> None:
    node = disk_cap(disk("/mnt/a", 100, kind=VolumeType.MOUNTPOINT))
    mount = VolumeRequest("m", "PVC ns/m", GiB, VolumeType.MOUNTPOINT)
    assert fit(PodDemand((mount,)), node).ok
    assert fit(PodDemand((device("d", 1),)), node).reason == ("localcsi: no a free disk of at least 1 GiB for PVC ns/d")


def test_nodes_with_the_same_outcome_share_one_assignment() -> None:
    fitter = Fitter(PodDemand((pvc("a", 1), pvc("b", 2))))
    first = fitter.fit(cap(10, node="n1"), None)
    second = fitter.fit(cap(20, node="n2"), held(vg0=1))
    assert first is second
    assert not isinstance(first, str)
    assert first.vg_bytes == (("vg0", 3 * GiB),)


def test_held_totals_follow_adds_and_removes() -> None:
    total = Held()
    one = assignment([Charge("a", "vg0", GiB), Charge("b", "vg1", 2 * GiB), Charge("c", disk="/dev/sdb")])
    two = assignment([Charge("d", "vg0", 3 * GiB)])
    total.add(one)
    total.add(two)
    assert (total.vg_bytes, total.disks, total.total_bytes) == ({"vg0": 4 * GiB, "vg1": 2 * GiB}, {"/dev/sdb"}, 6 * GiB)
    total.remove(one)
    assert (total.vg_bytes, total.disks, total.total_bytes) == ({"vg0": 3 * GiB}, set(), 3 * GiB)
    total.remove(two)
    assert total.empty


@given(
    free=st.lists(st.integers(0, 64), min_size=0, max_size=4),
    held_gib=st.lists(st.integers(0, 16), min_size=4, max_size=4),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    named=st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=5, max_size=5),
)
def test_a_fit_never_promises_more_than_a_vg_has_left(
    free: list[int], held_gib: list[int], sizes: list[int], named: list[int | None]
) -> None:
    node = cap(*free)
    others = held(**{f"vg{i}": held_gib[i] for i in range(len(free)) if held_gib[i]}) if free else None
    requests = tuple(pvc(f"v{i}", size, None if named[i] is None else f"vg{named[i]}") for i, size in enumerate(sizes))
    result = fit(PodDemand(requests), node, others)
    if not result.ok:
        return
    assert sorted(c.key for c in result.charges) == sorted(r.key for r in requests)
    for vg, room in node.vg_free.items():
        taken = sum(c.charge_bytes for c in result.charges if c.vg == vg)
        held_here = others.vg_bytes.get(vg, 0) if others else 0
        assert taken == 0 or taken + held_here <= room
    for request, charge in ((r, next(c for c in result.charges if c.key == r.key)) for r in requests):
        assert request.vg_name in (None, charge.vg)


def test_rounding_leaves_no_room_for_a_byte_too_many() -> None:
    node = cap(1)
    exactly = VolumeRequest("x", "PVC ns/x", GiB)
    over = VolumeRequest("y", "PVC ns/y", GiB - ACCOUNTING_EXTENT + 1)
    assert fit(PodDemand((exactly,)), node).ok
    assert fit(PodDemand((exactly, over)), node).reason is not None
