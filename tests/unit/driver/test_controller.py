"""ControllerDriver over an in-memory backend: validation codes, idempotency, locks (the new volume's
plan, placement and fill: test_create_volume_plan.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from controller_fakes import BLOCK, MOUNT, NODE, THIN, FakeBackend, two_vg_backend

from localcsi import TOPOLOGY_KEY
from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import (
    Aborted,
    AlreadyExists,
    CoreError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from localcsi.core.names import volume_lv_name
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import Source, SourceKind
from localcsi.driver.backend import CREATING_TAG, Fill
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.requests import CapacityRequest, CreateVolumeRequest, ExpandVolumeRequest
from localcsi.testing.fake_lvm import Killed

pytestmark = pytest.mark.unit


@pytest.fixture
def backend() -> FakeBackend:
    return two_vg_backend()


@pytest.fixture
def driver(backend: FakeBackend) -> ControllerDriver:
    return ControllerDriver(backend)


def create(driver: ControllerDriver, name: str = "pvc-1", required: int = GiB, **fields: object) -> object:
    fields.setdefault("capabilities", (MOUNT,))
    return driver.create_volume(CreateVolumeRequest(name, required_bytes=required, **fields))  # type: ignore[arg-type]


def test_room_taken_between_placement_and_lvcreate_means_placing_again(
    driver: ControllerDriver, backend: FakeBackend
) -> None:
    backend.taken_meanwhile = "localcsi-b"
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB))
    assert [plan.ref.vg for plan in backend.plans] == ["localcsi-b", "localcsi-a"]
    assert volume.ref.vg == "localcsi-a"
    backend.taken_meanwhile = "localcsi-a"
    with pytest.raises(ResourceExhausted):  # no other VG has room: the second placement fails cleanly
        driver.create_volume(CreateVolumeRequest("pvc-2", (MOUNT,), required_bytes=7 * GiB))


def test_create_is_idempotent_by_name(driver: ControllerDriver, backend: FakeBackend) -> None:
    first = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB))
    again = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB, limit_bytes=2 * GiB))
    assert again.id == first.id
    assert len(backend.plans) == 1, "a repeated request must not create anything"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"required_bytes": 2 * GiB}, "size"),
        ({"required_bytes": GiB // 4, "limit_bytes": GiB // 2}, "size"),
        ({"parameters": {"lvmType": "striping"}}, "lvmType"),
        ({"parameters": {"vgName": "localcsi-a"}}, "volume group"),
        ({"capabilities": (Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "xfs"),)}, "made for ext4"),
        ({"source": Source(SourceKind.VOLUME, f"{NODE}/localcsi-a/csi-0000")}, "content source"),
    ],
)
def test_same_name_with_a_different_request_already_exists(
    driver: ControllerDriver, backend: FakeBackend, change: dict[str, object], why: str
) -> None:
    driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB))
    request = CreateVolumeRequest(**{"name": "pvc-1", "capabilities": (MOUNT,), "required_bytes": GiB, **change})  # type: ignore[arg-type]
    with pytest.raises(AlreadyExists, match=why):
        driver.create_volume(request)
    assert len(backend.plans) == 1


def test_a_name_whose_lv_carries_another_name_is_internal(driver: ControllerDriver, backend: FakeBackend) -> None:
    driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB))
    [(key, lv)] = backend.lvs.items()
    renamed = tuple(t if not t.startswith("localcsi.io/name=") else "localcsi.io/name=b3RoZXI" for t in lv.tags)
    backend.lvs[key] = replace(lv, tags=renamed)
    with pytest.raises(Internal, match="tags say 'other'"):
        driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB))


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (CreateVolumeRequest("", (MOUNT,)), InvalidArgument),
        (CreateVolumeRequest("x" * 129, (MOUNT,)), InvalidArgument),
        (CreateVolumeRequest("pvc", ()), InvalidArgument),
        (CreateVolumeRequest("pvc", (Capability("SINGLE_NODE_WRITER", None),)), InvalidArgument),
        (CreateVolumeRequest("pvc", (Capability("UNKNOWN", AccessType.MOUNT),)), InvalidArgument),
        (CreateVolumeRequest("pvc", (Capability("MULTI_NODE_MULTI_WRITER", AccessType.MOUNT),)), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), parameters={"lvmType": "mirror"}), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), parameters={"unknown": "1"}), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), parameters={"vgName": "vg; rm -rf /"}), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), parameters={"volumeType": "Device"}), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), required_bytes=-1), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), limit_bytes=-5), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), required_bytes=2 * GiB, limit_bytes=GiB), OutOfRange),
        (CreateVolumeRequest("pvc", (BLOCK,), required_bytes=GiB + 1, limit_bytes=GiB + 2), OutOfRange),
        (CreateVolumeRequest("pvc", (BLOCK,), required_bytes=64 * GiB), ResourceExhausted),
        (CreateVolumeRequest("pvc", (BLOCK,), parameters={"vgName": "localcsi-zz"}), ResourceExhausted),
        (CreateVolumeRequest("pvc", (BLOCK,), source=Source(SourceKind.SNAPSHOT, "a;b")), NotFound),
        (CreateVolumeRequest("pvc", (BLOCK,), source=Source(SourceKind.SNAPSHOT, "")), InvalidArgument),
        (CreateVolumeRequest("pvc", (BLOCK,), source=Source(SourceKind.VOLUME, f"{NODE}/v/csi-1")), NotFound),
    ],
)
def test_bad_requests_get_their_code_and_change_nothing(
    driver: ControllerDriver, backend: FakeBackend, request_: CreateVolumeRequest, error: type[CoreError]
) -> None:
    with pytest.raises(error):
        driver.create_volume(request_)
    assert backend.plans == [] and backend.lvs == {}


def snapshot_of(driver: ControllerDriver, volume_id: str, name: str = "snap-1") -> str:
    return driver.snapshots.create(name, volume_id, {}).id


def test_a_create_killed_mid_fill_is_hidden_then_finished_by_the_retry(
    driver: ControllerDriver, backend: FakeBackend
) -> None:
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB))
    request = CreateVolumeRequest("clone", (BLOCK,), source=Source(SourceKind.VOLUME, source.id))
    backend.kill_during_fill = True
    with pytest.raises(Killed):
        driver.create_volume(request)
    half = backend.find_volume(volume_lv_name("clone"))
    assert half is not None and CREATING_TAG in half.lv.tags
    assert [v.name for v in driver.list_volumes(0, "").entries] == ["src"], "a half-filled volume is not listed"
    with pytest.raises(NotFound):
        driver.get_volume(half.id)
    backend.kill_during_fill = False
    finished = driver.create_volume(request)
    assert finished.id == half.id and CREATING_TAG not in finished.lv.tags
    assert len(backend.lvs) == 2, "the retry finished the same LV instead of making another"
    assert backend.plans[-1].fill is Fill.BLOCK_COPY


def test_an_unfinished_volume_whose_source_vanished_is_removed(driver: ControllerDriver, backend: FakeBackend) -> None:
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB))
    request = CreateVolumeRequest("clone", (BLOCK,), source=Source(SourceKind.VOLUME, source.id))
    backend.kill_during_fill = True
    with pytest.raises(Killed):
        driver.create_volume(request)
    driver.delete_volume(source.id)
    with pytest.raises(NotFound, match="source volume"):
        driver.create_volume(request)
    assert backend.lvs == {}, "the half-made clone must not linger"


def test_an_unfinished_restore_of_an_overflowed_snapshot_is_removed(
    driver: ControllerDriver, backend: FakeBackend
) -> None:
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB))
    snap = driver.snapshots.create("s", source.id, {})
    request = CreateVolumeRequest("r", (BLOCK,), source=Source(SourceKind.SNAPSHOT, snap.id))
    backend.kill_during_fill = True
    with pytest.raises(Killed):
        driver.create_volume(request)
    key = (snap.ref.vg, snap.ref.lv)
    backend.lvs[key] = replace(backend.lvs[key], attr="swi-I-s---")
    with pytest.raises(FailedPrecondition, match="overflowed"):
        driver.create_volume(request)
    assert backend.find_volume(volume_lv_name("r")) is None


def test_delete_is_idempotent_and_accepts_foreign_ids(driver: ControllerDriver, backend: FakeBackend) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,)))
    driver.delete_volume(volume.id)
    driver.delete_volume(volume.id)
    driver.delete_volume("not-an-id; rm -rf /")
    driver.delete_volume(f"node-2/localcsi-a/{volume.ref.lv}")
    assert backend.deleted == [volume.id]
    with pytest.raises(InvalidArgument):
        driver.delete_volume("")


def test_a_volume_with_thick_snapshots_is_not_deleted(driver: ControllerDriver) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,)))
    snapshot_of(driver, volume.id)
    with pytest.raises(FailedPrecondition):
        driver.delete_volume(volume.id)
    assert driver.get_volume(volume.id).id == volume.id


def test_expand(driver: ControllerDriver) -> None:
    # in the VG with room to grow: localcsi-b, the best fit, has 1 GiB left after it
    params = {"vgName": "localcsi-a"}
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB, parameters=params))
    grown, node_expansion = driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=2 * GiB + 1))
    assert (grown.size_bytes, node_expansion) == (2 * GiB + 4 * MiB, True)
    same, _ = driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=GiB))
    assert same.size_bytes == grown.size_bytes, "asking for less than the current size changes nothing"
    _, block_expansion = driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=3 * GiB, capability=BLOCK))
    assert not block_expansion, "a block volume has no filesystem to grow"
    for bad, error in [
        (ExpandVolumeRequest(volume.id), InvalidArgument),
        (ExpandVolumeRequest("", required_bytes=GiB), InvalidArgument),
        (ExpandVolumeRequest(volume.id, required_bytes=4 * GiB, limit_bytes=GiB), OutOfRange),
        (ExpandVolumeRequest(volume.id, required_bytes=-1), InvalidArgument),
        (ExpandVolumeRequest(f"{NODE}/localcsi-a/csi-missing", required_bytes=GiB), NotFound),
    ]:
        with pytest.raises(error):
            driver.expand_volume(bad)


@pytest.mark.parametrize("required", [2**62, 2**63 - 1, 1024 * GiB])
def test_thick_expansion_beyond_the_vgs_free_space_is_refused_before_lvextend(
    driver: ControllerDriver, required: int
) -> None:
    volume = driver.create_volume(CreateVolumeRequest("big", (MOUNT,), required_bytes=GiB))
    with pytest.raises(ResourceExhausted, match="free; growing"):
        driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=required))
    assert driver.get_volume(volume.id).size_bytes == GiB


def test_thin_expansion_respects_the_pools_room(driver: ControllerDriver) -> None:
    volume = driver.create_volume(CreateVolumeRequest("t", (BLOCK,), required_bytes=GiB, parameters=THIN))
    with pytest.raises(ResourceExhausted, match="virtual room"):
        driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=5 * GiB))
    grown, _ = driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=4 * GiB))
    assert grown.size_bytes == 4 * GiB


def test_list_volumes_pages_without_duplicates_or_gaps(driver: ControllerDriver) -> None:
    names = [f"pvc-{i:03}" for i in range(25)]
    for name in names:
        driver.create_volume(CreateVolumeRequest(name, (BLOCK,), required_bytes=4 * MiB))
    seen: list[str] = []
    page = driver.list_volumes(7, "")
    deleted = page.entries[-1].id
    driver.delete_volume(deleted)  # the token's own volume disappears between pages
    seen += [v.id for v in page.entries]
    while page.next_token:
        page = driver.list_volumes(7, page.next_token)
        seen += [v.id for v in page.entries]
    assert len(seen) == len(set(seen)) == 25
    with pytest.raises(Aborted):
        driver.list_volumes(0, "invalid-token")
    with pytest.raises(InvalidArgument):
        driver.list_volumes(-1, "")


def test_validate_capabilities(driver: ControllerDriver) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,)))
    assert driver.validate_capabilities(volume.id, (MOUNT, BLOCK), {}) is None
    multi = Capability("MULTI_NODE_MULTI_WRITER", AccessType.MOUNT)
    assert "one node" in (driver.validate_capabilities(volume.id, (multi,), {}) or "")
    xfs = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "xfs")
    assert "ext4" in (driver.validate_capabilities(volume.id, (xfs,), {}) or "")
    assert "thin" in (driver.validate_capabilities(volume.id, (MOUNT,), THIN) or "")
    assert "unknown" in (driver.validate_capabilities(volume.id, (MOUNT,), {"bogus": "1"}) or "")
    with pytest.raises(InvalidArgument):
        driver.validate_capabilities("", (MOUNT,), {})
    with pytest.raises(InvalidArgument):
        driver.validate_capabilities(volume.id, (), {})
    with pytest.raises(NotFound):
        driver.validate_capabilities(f"{NODE}/localcsi-a/csi-gone", (MOUNT,), {})


def test_capacity_per_type_and_topology(driver: ControllerDriver) -> None:
    everything = driver.capacity(CapacityRequest())
    assert everything.maximum_volume_bytes == 8 * GiB - 4 * GiB, "localcsi-a holds the 4 GiB pool"
    assert everything.available_bytes == 4 * GiB + 2 * GiB
    assert driver.capacity(CapacityRequest({"vgName": "localcsi-b"})).available_bytes == 2 * GiB
    assert driver.capacity(CapacityRequest(THIN)).available_bytes == 4 * GiB
    assert driver.capacity(CapacityRequest({**THIN, "overProvisioningRatio": "1.5"})).available_bytes == 6 * GiB
    assert driver.capacity(CapacityRequest(topology={TOPOLOGY_KEY: NODE})) == everything
    assert driver.capacity(CapacityRequest(topology={TOPOLOGY_KEY: "node-2"})).available_bytes == 0
    assert driver.capacity(CapacityRequest(topology={"zone": "z"})).available_bytes == 0
    multi = Capability("MULTI_NODE_MULTI_WRITER", AccessType.MOUNT)
    assert driver.capacity(CapacityRequest(capabilities=(multi,))).available_bytes == 0
    assert driver.capacity(CapacityRequest({"volumeType": "Device"})).available_bytes == 0
    with pytest.raises(InvalidArgument):
        driver.capacity(CapacityRequest({"lvmType": "zfs"}))


def test_a_second_operation_on_a_busy_volume_is_aborted(driver: ControllerDriver) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,)))
    with driver.locks.hold(exclusive=[volume.ref.lv]):
        with pytest.raises(Aborted):
            driver.delete_volume(volume.id)
        with pytest.raises(Aborted):
            driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=2 * GiB))
        with pytest.raises(Aborted):
            driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,)))
        with pytest.raises(Aborted):
            driver.snapshots.create("s", volume.id, {})
    with driver.locks.hold(shared=[volume.ref.lv]):  # e.g. being cloned: readers are fine, deleting is not
        driver.snapshots.create("s", volume.id, {})
        with pytest.raises(Aborted):
            driver.delete_volume(volume.id)
