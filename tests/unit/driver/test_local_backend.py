"""LocalLvmBackend over an in-memory lvm2: what it runs, in which order, and what it refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest
from local_backend_fakes import NODE, VG, Clock, local_backend, make_volume, node_lvm, plan

from localcsi.core.errors import Aborted, FailedPrecondition, InvalidArgument, ResourceExhausted
from localcsi.core.ids import make_ref
from localcsi.core.model import LogicalVolume, PhysicalVolume, Volume, VolumeGroup
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import GiB, MiB
from localcsi.core.snapshots import full_cow_bytes
from localcsi.core.tags import Source, SourceKind
from localcsi.driver.backend import CREATING_TAG, Content, Fill, SnapshotPlan
from localcsi.driver.local_backend import LocalLvmBackend, clone_snapshot_name
from localcsi.driver.lvm_state import StateView, created_lv
from localcsi.testing.fake_lvm import FakeDevices, FakeLvm, Killed, pool

pytestmark = pytest.mark.unit


@pytest.fixture
def lvm() -> FakeLvm:
    return node_lvm()


@pytest.fixture
def devices(lvm: FakeLvm) -> FakeDevices:
    return FakeDevices(lvm.calls)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(lvm: FakeLvm, devices: FakeDevices, clock: Clock) -> LocalLvmBackend:
    return local_backend(lvm, devices, clock)


def dev(lv: str) -> str:
    return f"/dev/{VG}/{lv}"


def new_calls(lvm: FakeLvm, since: int) -> list[tuple[str, ...]]:
    return lvm.calls[since:]


def thick_clone_source(backend: LocalLvmBackend) -> tuple[Volume, Content]:
    """A 1 GiB thick volume, and what a clone of it copies."""
    source = make_volume(backend, "src")
    return source, Content(Source(SourceKind.VOLUME, source.id), source.ref, Fill.BLOCK_COPY, False, GiB)


def test_state_is_reused_until_a_change_or_max_age(backend: LocalLvmBackend, lvm: FakeLvm, clock: Clock) -> None:
    backend.volumes()
    backend.storage(NODE)
    backend.snapshots()
    assert lvm.state_reads == 1
    clock.now += 5.5
    backend.volumes()
    assert lvm.state_reads == 2, "an old view is read again"
    make_volume(backend, "pvc-1")
    assert [v.name for v in backend.volumes()] == ["pvc-1"], "a change is visible at once"
    volume = make_volume(backend, "pvc-2")
    backend.delete_volume(volume)
    assert [v.name for v in backend.volumes()] == ["pvc-1"]
    assert lvm.state_reads == 3, "a removal drops the view"


def test_an_empty_volume_is_folded_into_the_view_without_asking_lvm2_again(
    backend: LocalLvmBackend, lvm: FakeLvm
) -> None:
    before = backend.storage(NODE).vg(VG)
    assert before is not None
    volume = backend.create_volume(plan("pvc-1", 2 * GiB, LvmType.LINEAR))
    thin = backend.create_volume(plan("t", GiB, LvmType.THIN))
    assert lvm.state_reads == 1, "one report served placement, the folding and the thin pool check"
    after = backend.storage(NODE).vg(VG)
    assert after is not None and after.free_bytes == before.free_bytes - 2 * GiB
    assert after.pvs[0].free_bytes == before.pvs[0].free_bytes - 2 * GiB
    assert backend.find_volume(volume.ref.lv) == volume
    shown = lvm.lvs[(VG, volume.ref.lv)]
    fields = ("size_bytes", "attr", "layout", "tags", "pool_lv", "lvm_type")
    assert [getattr(volume.lv, f) for f in fields] == [getattr(shown, f) for f in fields], "as lvs shows it"
    [pool] = backend.storage(NODE).pools
    assert pool.virtual_bytes == GiB and thin.lvm_type is LvmType.THIN


def test_an_empty_volume_is_one_lvcreate_with_its_tags(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    volume = make_volume(backend, "pvc-1")
    assert lvm.calls == [("create_lv", VG, volume_lv_name("pvc-1"), "linear")]
    assert CREATING_TAG not in volume.lv.tags and volume.fs_type == "ext4"
    assert backend.find_volume(volume.ref.lv) == volume


def test_lvcreate_racing_another_creator_is_aborted(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    backend.volumes()  # the view is now stale: another process creates the same LV
    lvm.add(LogicalVolume(VG, volume_lv_name("pvc-1"), GiB, "-wi-a-----", tags=plan("pvc-1").tags()))
    lvm.calls.clear()
    with pytest.raises(Aborted, match="retry"):
        backend.create_volume(plan("pvc-1"))
    assert backend.find_volume(volume_lv_name("pvc-1")) is not None, "the view was refreshed for the retry"


def test_thin_volumes_are_checked_against_the_pool_right_before_lvcreate(
    backend: LocalLvmBackend, lvm: FakeLvm
) -> None:
    backend.create_volume(plan("t1", 3 * GiB, LvmType.THIN))
    with pytest.raises(ResourceExhausted, match="virtual room"):
        backend.create_volume(plan("t2", 2 * GiB, LvmType.THIN))
    backend.create_volume(plan("t2", 2 * GiB, LvmType.THIN, overprovisioning="3/2"))
    assert [c[2] for c in lvm.calls if c[0] == "create_lv"] == [volume_lv_name("t1"), volume_lv_name("t2")]


def restore_content(snapshot: LogicalVolume, thin: bool = False) -> Content:
    fill = Fill.THIN_SNAPSHOT if thin else Fill.BLOCK_COPY
    ref = make_ref(NODE, snapshot.vg, snapshot.name)
    return Content(Source(SourceKind.SNAPSHOT, str(ref)), ref, fill, thin, GiB)


def test_a_thick_restore_is_tagged_until_its_copy_is_done(
    backend: LocalLvmBackend, lvm: FakeLvm, devices: FakeDevices
) -> None:
    source = make_volume(backend, "src")
    backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", source, 2 * GiB))
    snap = lvm.lvs[(VG, snapshot_lv_name("s"))]
    request = plan("dst", content=restore_content(snap))
    devices.kill_during_copy = True
    start = len(lvm.calls)
    with pytest.raises(Killed):
        backend.create_volume(request)
    half = backend.find_volume(volume_lv_name("dst"))
    assert half is not None and CREATING_TAG in half.lv.tags, "a half-copied volume stays marked"
    devices.kill_during_copy = False
    done = backend.create_volume(request)
    assert CREATING_TAG not in done.lv.tags
    target = volume_lv_name("dst")
    assert new_calls(lvm, start) == [
        ("create_lv", VG, target, "linear"),
        ("copy", dev(snap.name), dev(target), str(GiB)),
        ("copy", dev(snap.name), dev(target), str(GiB)),
        ("del_tags", VG, target, CREATING_TAG),
    ], "the retry copies again into the same LV and only then clears the mark"


def test_a_thin_restore_is_a_thin_snapshot_grown_to_size(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    source = make_volume(backend, "src", LvmType.THIN)
    backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", source, None))
    snap = lvm.lvs[(VG, snapshot_lv_name("s"))]
    start = len(lvm.calls)
    restored = backend.create_volume(plan("dst", 2 * GiB, LvmType.THIN, content=restore_content(snap, thin=True)))
    target = volume_lv_name("dst")
    assert new_calls(lvm, start) == [
        ("create_snapshot", VG, snap.name, target, "None"),
        ("extend_lv", VG, target, str(2 * GiB)),
        ("del_tags", VG, target, CREATING_TAG),
    ]
    assert restored.size_bytes == 2 * GiB and restored.lv.origin == snap.name


def test_a_snapshot_or_thin_restore_is_refused_outside_its_sources_vg(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    # The CRD admits a LogicalVolume whose vgName is not its source's (found by tests/cluster/test_cr_fuzz.py):
    # lvcreate --snapshot would look for the origin in the wrong VG on every retry.
    source = make_volume(backend, "src", LvmType.THIN)
    start = len(lvm.calls)
    elsewhere = make_ref(NODE, "other-vg", snapshot_lv_name("s"))
    with pytest.raises(InvalidArgument, match="made beside its source"):
        backend.create_snapshot(SnapshotPlan(elsewhere, "s", source, None))
    snap = backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", source, None))
    mismatched = plan("dst", lvm_type=LvmType.THIN, content=restore_content(snap.lv, thin=True))
    mismatched = replace(mismatched, ref=make_ref(NODE, "other-vg", volume_lv_name("dst")))
    with pytest.raises(InvalidArgument, match="made beside its source"):
        backend.create_volume(mismatched)
    assert [call[0] for call in new_calls(lvm, start)] == ["create_snapshot"]  # only the valid snapshot


def test_a_thick_clone_copies_from_a_temporary_snapshot_that_is_wiped_after(
    backend: LocalLvmBackend, lvm: FakeLvm
) -> None:
    source, content = thick_clone_source(backend)
    target = volume_lv_name("clone")
    temporary = clone_snapshot_name(target)
    lvm.add(LogicalVolume(VG, temporary, 4 * MiB, "swi-a-s---", origin=source.ref.lv))  # an older attempt's
    start = len(lvm.calls)
    backend.create_volume(plan("clone", content=content))
    cow = full_cow_bytes(GiB, 4 * MiB)
    assert new_calls(lvm, start) == [
        ("create_lv", VG, target, "linear"),
        ("split_snapshot", VG, temporary),
        ("wipe", dev(temporary)),
        ("remove_lv", VG, temporary),
        ("create_snapshot", VG, source.ref.lv, temporary, str(cow)),
        ("copy", dev(temporary), dev(target), str(GiB)),
        ("split_snapshot", VG, temporary),
        ("wipe", dev(temporary)),
        ("remove_lv", VG, temporary),
        ("del_tags", VG, target, CREATING_TAG),
    ]
    assert not lvm.lvs[(VG, source.ref.lv)].is_cow_origin, "no snapshot is left on the source"


def test_a_thick_clone_whose_snapshot_finds_no_extent_leaves_nothing_behind(
    backend: LocalLvmBackend, lvm: FakeLvm
) -> None:
    # Placement keeps an extent free in the source's VG; here another create took it in between.
    _, content = thick_clone_source(backend)
    lvm.vgs[0] = replace(lvm.vgs[0], free_bytes=4 * MiB - 1)
    backend.view.changed()
    before, start = dict(lvm.lvs), len(lvm.calls)
    with pytest.raises(ResourceExhausted, match="no free extent left"):
        backend.create_volume(plan("clone", content=content))
    target = volume_lv_name("clone")
    assert new_calls(lvm, start) == [("create_lv", VG, target, "linear"), ("remove_lv", VG, target)]
    assert lvm.lvs == before


def test_a_leftover_unfinished_clone_is_kept_for_the_retry_when_its_snapshot_finds_no_extent(
    backend: LocalLvmBackend, lvm: FakeLvm
) -> None:
    # An earlier attempt's LV may hold part of a copy: only a retry that fills it, or a delete that
    # wipes it, may touch it.
    _, content = thick_clone_source(backend)
    target = volume_lv_name("clone")
    lvm.add(LogicalVolume(VG, target, GiB, "-wi-a-----", tags=(CREATING_TAG,)))
    lvm.vgs[0] = replace(lvm.vgs[0], free_bytes=0)
    backend.view.changed()
    start = len(lvm.calls)
    with pytest.raises(ResourceExhausted, match="no free extent left"):
        backend.create_volume(plan("clone", content=content))
    assert ("remove_lv", VG, target) not in new_calls(lvm, start)
    assert (VG, target) in lvm.lvs


def test_deleting_a_thick_volume_wipes_it_first(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    volume = make_volume(backend, "pvc-1")
    start = len(lvm.calls)
    backend.delete_volume(volume)
    assert new_calls(lvm, start) == [("wipe", dev(volume.ref.lv)), ("remove_lv", VG, volume.ref.lv)]
    assert backend.find_volume(volume.ref.lv) is None


def test_an_inactive_volume_is_activated_to_be_wiped(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    volume = make_volume(backend, "pvc-1")
    lvm.deactivate(VG, volume.ref.lv)
    start = len(lvm.calls)
    backend.delete_volume(backend.find_volume(volume.ref.lv))  # type: ignore[arg-type]
    assert [c[0] for c in new_calls(lvm, start)] == ["activate", "wipe", "remove_lv"]


def test_thin_volumes_rely_on_a_zeroing_pool(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    zeroed = make_volume(backend, "t1", LvmType.THIN)
    start = len(lvm.calls)
    backend.delete_volume(zeroed)
    assert new_calls(lvm, start) == [("remove_lv", VG, zeroed.ref.lv)], "the pool zeroes new blocks itself"
    lvm.add(pool(VG, zeroing=False))
    backend.view.changed()
    unzeroed = make_volume(backend, "t2", LvmType.THIN)
    start = len(lvm.calls)
    backend.delete_volume(unzeroed)
    assert new_calls(lvm, start) == [("wipe", dev(unzeroed.ref.lv)), ("remove_lv", VG, unzeroed.ref.lv)]


def test_a_volume_in_use_is_neither_wiped_nor_removed(
    backend: LocalLvmBackend, lvm: FakeLvm, devices: FakeDevices
) -> None:
    volume = make_volume(backend, "pvc-1")
    lvm._set_attr((VG, volume.ref.lv), 5, "o")
    start = len(lvm.calls)
    with pytest.raises(FailedPrecondition, match="unpublish"):
        backend.delete_volume(backend.find_volume(volume.ref.lv))  # type: ignore[arg-type]
    lvm._set_attr((VG, volume.ref.lv), 5, "-")
    devices.busy.add(dev(volume.ref.lv))  # opened meanwhile: O_EXCL refuses the wipe
    with pytest.raises(FailedPrecondition):
        backend.delete_volume(backend.find_volume(volume.ref.lv))  # type: ignore[arg-type]
    assert new_calls(lvm, start) == [] and (VG, volume.ref.lv) in lvm.lvs


def test_a_volume_with_thick_snapshots_is_kept_but_clone_leftovers_are_cleared(
    backend: LocalLvmBackend, lvm: FakeLvm
) -> None:
    volume = make_volume(backend, "pvc-1")
    snap = backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", volume, GiB))
    with pytest.raises(FailedPrecondition, match=snap.ref.lv):
        backend.delete_volume(backend.find_volume(volume.ref.lv))  # type: ignore[arg-type]
    backend.delete_snapshot(snap)
    leftover = clone_snapshot_name(volume_lv_name("some-clone"))
    lvm.create_snapshot(VG, volume.ref.lv, leftover, cow_bytes=GiB, tags=["localcsi.io"])
    backend.view.changed()
    backend.delete_volume(backend.find_volume(volume.ref.lv))  # type: ignore[arg-type]
    assert lvm.lvs.keys() == {(VG, "localcsi-thinpool")}


def test_deleting_snapshots(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    thick_source = make_volume(backend, "thick")
    thin_source = make_volume(backend, "thin", LvmType.THIN)
    thick = backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("a")), "a", thick_source, GiB))
    thin = backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("b")), "b", thin_source, None))
    assert (thick.thin, thin.thin, thick.size_bytes, thin.source_volume_id) == (False, True, GiB, thin_source.id)
    start = len(lvm.calls)
    backend.delete_snapshot(thick)
    backend.delete_snapshot(thin)
    assert new_calls(lvm, start) == [
        ("split_snapshot", VG, thick.ref.lv),
        ("wipe", dev(thick.ref.lv)),
        ("remove_lv", VG, thick.ref.lv),
        ("remove_lv", VG, thin.ref.lv),
    ], "a COW store holds copies of the origin's data: it is wiped; a thin snapshot needs no wipe"


def test_expanding(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    volume = make_volume(backend, "pvc-1")
    assert backend.expand_volume(volume, 2 * GiB).size_bytes == 2 * GiB
    backend.create_snapshot(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", volume, GiB))
    start = len(lvm.calls)
    assert backend.expand_volume(volume, 3 * GiB).size_bytes == 3 * GiB
    assert [c[0] for c in new_calls(lvm, start)] == ["deactivate", "extend_lv", "activate"], (
        "lvm2 grows a COW origin only while inactive"
    )
    lvm._set_attr((VG, volume.ref.lv), 5, "o")
    with pytest.raises(FailedPrecondition, match="thick snapshots"):
        backend.expand_volume(volume, 4 * GiB)


def two_pv_view() -> tuple[StateView, FakeLvm]:
    pvs = (PhysicalVolume("/dev/vdb", "v", 4 * GiB, 4 * GiB), PhysicalVolume("/dev/vdc", "v", 4 * GiB, 3 * GiB))
    lvm = FakeLvm(VolumeGroup("v", 8 * GiB, 7 * GiB, 4 * MiB, 2, pvs=pvs))
    view = StateView(lvm, lambda _: True, max_age=60)
    view.current()
    return view, lvm


@pytest.mark.parametrize(
    ("placement", "pv_free", "vg_free"),
    [
        (Placement("v", 5 * GiB, LvmType.LINEAR), [0, 2 * GiB], 2 * GiB),
        (Placement("v", 2 * GiB, LvmType.STRIPING, stripes=2), [3 * GiB, 2 * GiB], 5 * GiB),
        (Placement("v", GiB, LvmType.RAID1), [3 * GiB - 4 * MiB, 2 * GiB - 4 * MiB], 5 * GiB - 8 * MiB),
        (Placement("v", 64 * GiB, LvmType.THIN, thin_pool="p"), [4 * GiB, 3 * GiB], 7 * GiB),
    ],
)
def test_the_view_takes_space_where_lvm2_would(placement: Placement, pv_free: list[int], vg_free: int) -> None:
    view, lvm = two_pv_view()
    lv = created_lv("v", "csi-new", placement, ())
    view.created(lv, placement)
    view.created(lv, placement)  # folding the same LV twice counts it once
    [group] = view.current().vgs
    assert ([pv.free_bytes for pv in group.pvs], group.free_bytes) == (pv_free, vg_free)
    assert [o.name for o in view.current().lvs] == ["csi-new"] and lvm.state_reads == 1


def test_nothing_is_folded_into_a_dropped_view() -> None:
    view, lvm = two_pv_view()
    view.changed()
    view.created(
        created_lv("v", "csi-new", Placement("v", GiB, LvmType.LINEAR), ()), Placement("v", GiB, LvmType.LINEAR)
    )
    assert view.current().lvs == () and lvm.state_reads == 2, "the next caller reads lvm2 again"
