from fractions import Fraction

import pytest
from core_factories import EXTENT, pool, vg
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.errors import OutOfRange, ResourceExhausted
from localcsi.core.params import LvmType, VolumeParams
from localcsi.core.placement import KeepFree, Placement, capacity, max_volume_bytes, place
from localcsi.core.sizes import GiB, MiB

pytestmark = pytest.mark.unit

LINEAR = VolumeParams()
RAID1 = VolumeParams(lvm_type=LvmType.RAID1)
THIN = VolumeParams(lvm_type=LvmType.THIN, thin_pool="localcsi-thinpool")


def striping(stripes: int | None = None) -> VolumeParams:
    return VolumeParams(lvm_type=LvmType.STRIPING, stripes=stripes)


def test_best_fit_picks_the_vg_with_least_room_left() -> None:
    vgs = [vg("big", 50), vg("small", 3), vg("tiny", 0.5)]
    assert place(vgs, [], LINEAR, 2 * GiB, 0) == Placement("small", 2 * GiB, LvmType.LINEAR)


def test_ties_go_to_the_first_name() -> None:
    vgs = [vg("vg-b", 5), vg("vg-a", 5)]
    assert place(vgs, [], LINEAR, GiB, 0).vg == "vg-a"


def test_size_is_rounded_to_the_chosen_vgs_extent() -> None:
    vgs = [vg("vg", 5, extent=32 * MiB)]
    assert place(vgs, [], LINEAR, 33 * MiB, 0).size_bytes == 64 * MiB


def test_named_vg_is_used_even_if_another_fits_better() -> None:
    vgs = [vg("big", 50), vg("small", 3)]
    assert place(vgs, [], VolumeParams(vg_name="big"), GiB, 0).vg == "big"


def test_named_vg_missing_is_resource_exhausted_listing_the_vgs() -> None:
    with pytest.raises(ResourceExhausted, match=r"'nope'.*big"):
        place([vg("big", 50)], [], VolumeParams(vg_name="nope"), GiB, 0)


def test_no_vgs_at_all() -> None:
    with pytest.raises(ResourceExhausted, match="no LVM volume groups"):
        place([], [], LINEAR, GiB, 0)


def test_no_room_is_resource_exhausted_with_reasons() -> None:
    with pytest.raises(ResourceExhausted, match="vg0: needs 10 GiB, 2 GiB free"):
        place([vg("vg0", 2)], [], LINEAR, 10 * GiB, 0)


def test_partial_and_read_only_vgs_are_never_used() -> None:
    vgs = [vg("broken", 50, attr="wz-pn-"), vg("ro", 50, attr="rz--n-")]
    with pytest.raises(ResourceExhausted, match="missing a PV"):
        place(vgs, [], LINEAR, GiB, 0)


def test_impossible_range_is_out_of_range_not_exhaustion() -> None:
    with pytest.raises(OutOfRange):
        place([vg("vg0", 50)], [], LINEAR, 5 * MiB, 6 * MiB)


def test_default_size_without_a_range() -> None:
    assert place([vg("vg0", 50)], [], LINEAR, 0, 0).size_bytes == GiB


def test_restore_defaults_to_the_source_size() -> None:
    assert place([vg("vg0", 50)], [], LINEAR, 0, 0, source_bytes=3 * GiB).size_bytes == 3 * GiB


def test_linear_may_span_pvs() -> None:
    assert place([vg("vg0", 2, 2)], [], LINEAR, 3 * GiB, 0).size_bytes == 3 * GiB


def test_explicit_stripes_round_to_a_multiple_of_stripes_extents() -> None:
    placement = place([vg("vg0", 10, 10, 10)], [], striping(3), GiB, 0)
    assert placement.stripes == 3
    assert placement.size_bytes == 258 * EXTENT  # 256 extents round up to 258


def test_auto_stripes_use_every_pv_with_room() -> None:
    placement = place([vg("vg0", 10, 10, 10, 0)], [], striping(), GiB, 0)
    assert placement.stripes == 3 and placement.size_bytes == 258 * EXTENT


def test_auto_stripes_drop_pvs_too_small_for_their_share() -> None:
    # 6 GiB over 3 PVs needs 2 GiB each; the 1 GiB PV cannot, so two stripes of 3 GiB.
    placement = place([vg("vg0", 5, 5, 1)], [], striping(), 6 * GiB, 0)
    assert placement.stripes == 2 and placement.size_bytes == 6 * GiB


def test_auto_stripes_fall_back_when_rounding_breaks_the_limit() -> None:
    placement = place([vg("vg0", 10, 10, 10)], [], striping(), GiB, GiB)
    assert placement.stripes == 2 and placement.size_bytes == GiB


def test_striping_needs_two_pvs() -> None:
    with pytest.raises(ResourceExhausted, match="at least 2 PVs"):
        place([vg("vg0", 50)], [], striping(), GiB, 0)


def test_explicit_stripes_need_that_many_pvs_with_room() -> None:
    with pytest.raises(ResourceExhausted, match="3 PVs with"):
        place([vg("vg0", 10, 10, 0.1)], [], striping(3), 3 * GiB, 0)


def test_raid1_needs_two_pvs_holding_the_size_plus_an_rmeta_extent() -> None:
    assert place([vg("vg0", 1.01, 1.01)], [], RAID1, GiB, 0).size_bytes == GiB
    with pytest.raises(ResourceExhausted, match="raid1 needs 2 PVs"):
        place([vg("vg0", 1, 1)], [], RAID1, GiB, 0)
    with pytest.raises(ResourceExhausted, match="raid1"):
        place([vg("vg0", 100)], [], RAID1, GiB, 0)


def test_thin_uses_the_pool_with_overprovisioning() -> None:
    pools = [pool("vg0", 10, 9)]
    with pytest.raises(ResourceExhausted, match="ratio 1"):
        place([vg("vg0", 0)], pools, THIN, 2 * GiB, 0)
    ratio = VolumeParams(lvm_type=LvmType.THIN, thin_pool="localcsi-thinpool", overprovisioning_ratio=Fraction(2))
    assert place([vg("vg0", 0)], pools, ratio, 2 * GiB, 0) == Placement(
        "vg0", 2 * GiB, LvmType.THIN, thin_pool="localcsi-thinpool"
    )


def test_thin_skips_vgs_without_the_pool() -> None:
    pools = [pool("vg1", 10, 0)]
    assert place([vg("vg0", 50), vg("vg1", 0)], pools, THIN, GiB, 0).vg == "vg1"
    with pytest.raises(ResourceExhausted, match="no thin pool 'localcsi-thinpool'"):
        place([vg("vg0", 50)], [], THIN, GiB, 0)


def test_capacity_per_type() -> None:
    group = vg("vg0", 10, 6, 3)
    assert max_volume_bytes(group, [], LINEAR) == 19 * GiB
    assert max_volume_bytes(group, [], striping(3)) == 9 * GiB
    assert max_volume_bytes(group, [], striping(2)) == 12 * GiB
    assert max_volume_bytes(group, [], striping()) == 12 * GiB
    assert max_volume_bytes(group, [], striping(4)) == 0
    assert max_volume_bytes(group, [], RAID1) == 6 * GiB - EXTENT
    assert max_volume_bytes(group, [pool("vg0", 10, 4)], THIN) == 6 * GiB
    assert max_volume_bytes(group, [pool("vg0", 10, 14)], THIN) == 0
    assert max_volume_bytes(vg("vg0", 10, attr="wz-pn-"), [], LINEAR) == 0


def test_get_capacity_sums_vgs_and_reports_the_largest_volume() -> None:
    vgs = [vg("a", 10), vg("b", 4)]
    assert capacity(vgs, [], LINEAR).available_bytes == 14 * GiB
    assert capacity(vgs, [], LINEAR).maximum_volume_bytes == 10 * GiB
    named = capacity(vgs, [], VolumeParams(vg_name="b"))
    assert (named.available_bytes, named.maximum_volume_bytes) == (4 * GiB, 4 * GiB)
    assert capacity(vgs, [], VolumeParams(vg_name="zzz")).available_bytes == 0


frees = st.lists(st.integers(min_value=0, max_value=64), min_size=1, max_size=5)
types = st.sampled_from([LINEAR, RAID1, striping(), striping(2), striping(3)])


@given(frees, types)
def test_reported_maximum_can_be_placed_and_one_extent_more_cannot(pv_extents: list[int], params: VolumeParams) -> None:
    group = vg("vg0", *(n * EXTENT / GiB for n in pv_extents))
    largest = max_volume_bytes(group, [], params)
    if largest:
        assert place([group], [], params, largest, largest).size_bytes == largest
    with pytest.raises((ResourceExhausted, OutOfRange)):
        place([group], [], params, largest + EXTENT, 0)


@given(frees, types, st.integers(min_value=1, max_value=80))
def test_a_placed_volume_never_exceeds_what_the_vg_can_give(
    pv_extents: list[int], params: VolumeParams, extents: int
) -> None:
    group = vg("vg0", *(n * EXTENT / GiB for n in pv_extents))
    try:
        placement = place([group], [], params, extents * EXTENT, 0)
    except ResourceExhausted:
        return
    assert placement.size_bytes % EXTENT == 0 and placement.size_bytes >= extents * EXTENT
    assert placement.size_bytes <= max_volume_bytes(group, [], params)


# keep_free: room a thick clone's temporary snapshot needs in its source's VG ---------------------


def test_keep_free_moves_the_volume_to_a_vg_that_leaves_the_kept_room() -> None:
    vgs = [vg("src", 2), vg("other", 3)]
    keep = KeepFree("src", EXTENT, "a snapshot")
    assert place(vgs, [], LINEAR, 2 * GiB, 0).vg == "src"  # the best fit, without it
    assert place(vgs, [], LINEAR, 2 * GiB, 0, keep_free=keep).vg == "other"
    assert place(vgs, [], LINEAR, 2 * GiB - EXTENT, 0, keep_free=keep).vg == "src"  # one extent left: enough
    with pytest.raises(ResourceExhausted, match="src: needs 4 MiB left free besides the volume, for a snapshot"):
        place(vgs, [], VolumeParams(vg_name="src"), 2 * GiB, 0, keep_free=keep)


def test_keep_free_counts_a_thin_volume_against_its_pool_not_the_vg() -> None:
    params = VolumeParams(lvm_type=LvmType.THIN, thin_pool="localcsi-thinpool")
    keep = KeepFree("src", EXTENT, "a snapshot")
    placed = place([vg("src", 0.5)], [pool("src", 2, 0)], params, 2 * GiB, 0, keep_free=keep)  # the pool full
    assert placed.vg == "src" and placed.lvm_type is LvmType.THIN


def test_keep_free_refuses_at_once_when_the_kept_vg_is_already_short() -> None:
    with pytest.raises(ResourceExhausted, match="volume group src needs 4 MiB free for a snapshot; it has 0 B"):
        place([vg("src", 0), vg("other", 50)], [], LINEAR, GiB, 0, keep_free=KeepFree("src", EXTENT, "a snapshot"))
    with pytest.raises(ResourceExhausted, match="volume group gone needs 4 MiB free for a snapshot; it has nothing"):
        place([vg("other", 50)], [], LINEAR, GiB, 0, keep_free=KeepFree("gone", EXTENT, "a snapshot"))
