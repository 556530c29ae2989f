"""Snapshots through the driver: kinds and sizes, idempotency, listing and filters."""

from __future__ import annotations

from dataclasses import replace

import pytest
from controller_fakes import BLOCK, NODE, FakeBackend, make_vg

from localcsi.core.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from localcsi.core.names import snapshot_lv_name
from localcsi.core.sizes import GiB, MiB
from localcsi.core.snapshots import full_cow_bytes
from localcsi.core.tags import Source, SourceKind
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.requests import CreateVolumeRequest, ListSnapshotsRequest

pytestmark = pytest.mark.unit


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(make_vg("localcsi-a", 8), pool_in="localcsi-a")


@pytest.fixture
def driver(backend: FakeBackend) -> ControllerDriver:
    return ControllerDriver(backend)


def volume_id(driver: ControllerDriver, name: str, thin: bool = False) -> str:
    params = {"lvmType": "thin"} if thin else {}
    return driver.create_volume(CreateVolumeRequest(name, (BLOCK,), required_bytes=GiB, parameters=params)).id


def test_thick_volumes_get_cow_snapshots_sized_by_the_class(driver: ControllerDriver, backend: FakeBackend) -> None:
    source = volume_id(driver, "thick")
    full = driver.snapshots.create("full", source, {})
    assert not full.thin and full.ready
    assert full.size_bytes == GiB, "the restore size is the source's size"
    assert full.lv.size_bytes == full_cow_bytes(GiB, 4 * MiB), "the default COW room can never overflow"
    quarter = driver.snapshots.create("quarter", source, {"snapshotSize": "25%"})
    assert quarter.lv.size_bytes == GiB // 4
    fixed = driver.snapshots.create("fixed", source, {"snapshotSize": "100Mi"})
    assert fixed.lv.size_bytes == 100 * MiB
    assert full.source_volume_id == source and full.ref.vg == "localcsi-a"
    assert full.ref.lv == snapshot_lv_name("full")


def test_thin_volumes_get_thin_snapshots(driver: ControllerDriver) -> None:
    source = volume_id(driver, "thin", thin=True)
    snap = driver.snapshots.create("s", source, {"snapshotSize": "10%"})
    assert snap.thin and snap.size_bytes == GiB
    assert snap.lv.pool_lv == "localcsi-thinpool"


def test_create_snapshot_is_idempotent_by_name_and_source(driver: ControllerDriver, backend: FakeBackend) -> None:
    one, two = volume_id(driver, "one"), volume_id(driver, "two")
    first = driver.snapshots.create("s", one, {})
    assert driver.snapshots.create("s", one, {}).id == first.id
    with pytest.raises(AlreadyExists, match="source volume"):
        driver.snapshots.create("s", two, {})
    assert len(backend.snapshots()) == 1


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (("", f"{NODE}/localcsi-a/csi-x", {}), InvalidArgument),
        (("s", "", {}), InvalidArgument),
        (("s", "testId", {}), NotFound),
        (("s", f"{NODE}/localcsi-a/csi-nothere", {}), NotFound),
        (("s", "$(reboot)", {}), NotFound),
        (("s", "VOLUME", {"snapshotSize": "0%"}), InvalidArgument),
        (("s", "VOLUME", {"snapshotSize": "-1Gi"}), InvalidArgument),
        (("s", "VOLUME", {"retention": "7d"}), InvalidArgument),
    ],
)
def test_bad_snapshot_requests(
    driver: ControllerDriver,
    backend: FakeBackend,
    request_: tuple[str, str, dict[str, str]],
    error: type[Exception],
) -> None:
    name, source, params = request_
    real = volume_id(driver, "v")
    with pytest.raises(error):
        driver.snapshots.create(name, real if source == "VOLUME" else source, params)
    assert backend.snapshots() == []


def test_delete_snapshot_is_idempotent(driver: ControllerDriver, backend: FakeBackend) -> None:
    snap = driver.snapshots.create("s", volume_id(driver, "v"), {})
    driver.snapshots.delete(snap.id)
    driver.snapshots.delete(snap.id)
    driver.snapshots.delete("reallyfakesnapshotid")
    assert backend.deleted == [snap.id]
    with pytest.raises(InvalidArgument):
        driver.snapshots.delete("")


def test_a_restore_in_progress_blocks_deleting_its_snapshot(driver: ControllerDriver) -> None:
    snap = driver.snapshots.create("s", volume_id(driver, "v"), {})
    with driver.locks.hold(shared=[snap.ref.lv]), pytest.raises(Aborted, match="in progress"):
        driver.snapshots.delete(snap.id)


def test_list_snapshots_filters_and_pages(driver: ControllerDriver) -> None:
    sources = [volume_id(driver, f"v{i}") for i in range(3)]
    snaps = [driver.snapshots.create(f"s{i}", src, {"snapshotSize": "1%"}) for i, src in enumerate(sources)]
    snaps.append(driver.snapshots.create("s3", sources[0], {"snapshotSize": "1%"}))
    every = driver.snapshots.list(ListSnapshotsRequest())
    assert sorted(s.id for s in every.entries) == sorted(s.id for s in snaps) and every.next_token == ""
    by_id = driver.snapshots.list(ListSnapshotsRequest(snapshot_id=snaps[1].id))
    assert [s.id for s in by_id.entries] == [snaps[1].id]
    for missing in ("none-exist-id", f"{NODE}/localcsi-a/snap-0", f"{NODE}/localcsi-a/{snaps[0].ref.lv}x"):
        assert driver.snapshots.list(ListSnapshotsRequest(snapshot_id=missing)).entries == ()
    by_source = driver.snapshots.list(ListSnapshotsRequest(source_volume_id=sources[0]))
    assert {s.id for s in by_source.entries} == {snaps[0].id, snaps[3].id}
    assert driver.snapshots.list(ListSnapshotsRequest(source_volume_id="fake")).entries == ()
    first = driver.snapshots.list(ListSnapshotsRequest(max_entries=2))
    rest = driver.snapshots.list(ListSnapshotsRequest(starting_token=first.next_token))
    assert len(first.entries) == 2 and len(rest.entries) == 2
    assert {s.id for s in first.entries + rest.entries} == {s.id for s in snaps}


def test_a_snapshot_split_for_deletion_is_hidden_and_finished(driver: ControllerDriver, backend: FakeBackend) -> None:
    snap = driver.snapshots.create("s", volume_id(driver, "v"), {})
    key = (snap.ref.vg, snap.ref.lv)
    backend.lvs[key] = replace(backend.lvs[key], attr="-wi-a-----", origin="")  # split, then the crash
    assert driver.snapshots.list(ListSnapshotsRequest()).entries == ()
    with pytest.raises(NotFound):
        driver.create_volume(CreateVolumeRequest("r", (BLOCK,), source=Source(SourceKind.SNAPSHOT, snap.id)))
    again = driver.snapshots.create("s", snap.source_volume_id, {})
    assert again.lv.is_cow_snapshot and backend.deleted == [snap.id], "the old store is removed, a new one made"


def test_an_overflowed_snapshot_cannot_be_restored(driver: ControllerDriver, backend: FakeBackend) -> None:
    snap = driver.snapshots.create("s", volume_id(driver, "v"), {})
    key = (snap.ref.vg, snap.ref.lv)
    backend.lvs[key] = replace(backend.lvs[key], attr="swi-I-s---")
    [listed] = driver.snapshots.list(ListSnapshotsRequest()).entries
    assert not listed.ready
    with pytest.raises(FailedPrecondition, match="overflowed"):
        driver.create_volume(CreateVolumeRequest("r", (BLOCK,), source=Source(SourceKind.SNAPSHOT, snap.id)))
