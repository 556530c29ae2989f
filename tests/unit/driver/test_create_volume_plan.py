"""The plan of a new volume (``localcsi.driver.create_volume_plan``), through ControllerDriver over an
in-memory backend: the request's shape and tags, placement and topology, and how restores and clones
are filled."""

from __future__ import annotations

import pytest
from controller_fakes import BLOCK, EXTENT, MOUNT, NODE, POOL, THIN, FakeBackend, make_vg, two_vg_backend

from localcsi import TOPOLOGY_KEY
from localcsi.core.errors import OutOfRange, ResourceExhausted
from localcsi.core.names import volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import Source, SourceKind
from localcsi.driver.backend import CONTEXT_FSTYPE, CREATING_TAG, Fill, volume_context
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.driver.topology import TopologyRequirement

pytestmark = pytest.mark.unit


@pytest.fixture
def backend() -> FakeBackend:
    return two_vg_backend()


@pytest.fixture
def driver(backend: FakeBackend) -> ControllerDriver:
    return ControllerDriver(backend)


def snapshot_of(driver: ControllerDriver, volume_id: str, name: str = "snap-1") -> str:
    return driver.snapshots.create(name, volume_id, {}).id


def test_create_rounds_to_extents_picks_the_best_fit_and_reports_topology(
    driver: ControllerDriver, backend: FakeBackend
) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=GiB + 1))
    assert volume.size_bytes == GiB + 4 * MiB, "the capacity reported is the request rounded up to extents"
    assert volume.ref.vg == "localcsi-b", "best fit: the smaller VG leaves the bigger one intact"
    assert volume.ref.lv == volume_lv_name("pvc-1")
    assert volume.id == f"{NODE}/localcsi-b/{volume.ref.lv}"
    assert (volume.name, volume.requested_bytes, volume.fs_type) == ("pvc-1", GiB + 1, "ext4")
    assert backend.plans[-1].fill is Fill.EMPTY


def test_volume_context_and_tags_carry_fstype_and_limits(driver: ControllerDriver) -> None:
    params = {"csi.storage.k8s.io/fstype": "xfs", "bps": "1Mi", "iops": "100", "csi.storage.k8s.io/pvc/name": "x"}
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), parameters=params))
    assert volume.size_bytes == GiB, "without a capacity range the default is 1 GiB"
    assert volume_context(volume) == {CONTEXT_FSTYPE: "xfs", "localcsi.io/bps": "1048576", "localcsi.io/iops": "100"}
    again = driver.get_volume(volume.id)
    assert volume_context(again) == volume_context(volume), "volume_context must never change"


def test_a_small_xfs_volume_is_made_large_enough_for_mkfs_xfs(driver: ControllerDriver) -> None:
    params = {"csi.storage.k8s.io/fstype": "xfs"}
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=200 * MiB, parameters=params))
    assert volume.size_bytes == 300 * MiB
    assert volume.requested_bytes == 200 * MiB, "the tags keep what was asked for"
    again = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), required_bytes=200 * MiB, parameters=params))
    assert again.id == volume.id, "the retry finds the same volume"


def test_a_block_only_volume_records_no_filesystem(driver: ControllerDriver) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (BLOCK,)))
    assert (volume.fs_type, volume.access_type) == (None, "block")


def test_topology_requisite_must_include_this_node(driver: ControllerDriver, backend: FakeBackend) -> None:
    elsewhere = TopologyRequirement(requisite=({TOPOLOGY_KEY: "node-2"},))
    with pytest.raises(ResourceExhausted, match="node-2"):
        driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), topology=elsewhere))
    preferred_elsewhere = TopologyRequirement(preferred=({TOPOLOGY_KEY: "node-2"},))
    volume = driver.create_volume(CreateVolumeRequest("pvc-1", (MOUNT,), topology=preferred_elsewhere))
    assert volume.ref.node == NODE, "a preference is not a requirement"
    here = TopologyRequirement(requisite=({TOPOLOGY_KEY: NODE, "zone": "z1"},))
    assert driver.create_volume(CreateVolumeRequest("pvc-2", (MOUNT,), topology=here)).ref.node == NODE


def test_thin_volumes_honour_the_overprovisioning_ratio(driver: ControllerDriver) -> None:
    driver.create_volume(CreateVolumeRequest("a", (BLOCK,), required_bytes=3 * GiB, parameters=THIN))
    with pytest.raises(ResourceExhausted, match="localcsi-thinpool"):
        driver.create_volume(CreateVolumeRequest("b", (BLOCK,), required_bytes=2 * GiB, parameters=THIN))
    over = {**THIN, "overProvisioningRatio": "2"}
    volume = driver.create_volume(CreateVolumeRequest("b", (BLOCK,), required_bytes=2 * GiB, parameters=over))
    assert volume.thin_pool == POOL and volume.lvm_type is LvmType.THIN
    assert "localcsi.io/overprovisioning=2" in volume.lv.tags


# -- restores and clones: where they go and how they are filled -------------------------------------


def test_thin_restore_is_a_thin_snapshot_in_the_sources_pool(driver: ControllerDriver, backend: FakeBackend) -> None:
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB, parameters=THIN))
    snap = snapshot_of(driver, source.id)
    restored = driver.create_volume(
        CreateVolumeRequest(
            "dst", (BLOCK,), required_bytes=2 * GiB, parameters=THIN, source=Source(SourceKind.SNAPSHOT, snap)
        )
    )
    plan = backend.plans[-1]
    assert plan.fill is Fill.THIN_SNAPSHOT and plan.content is not None
    assert plan.content.lv.lv == snap.rsplit("/", 1)[1]
    assert (restored.ref.vg, restored.size_bytes) == ("localcsi-a", 2 * GiB)
    assert restored.source == Source(SourceKind.SNAPSHOT, snap)
    assert CREATING_TAG not in restored.lv.tags


def test_thick_restore_and_clones_are_block_copies_anywhere() -> None:
    # localcsi-b keeps room after the restore: a clone of its thick volume needs an extent there
    backend = FakeBackend(make_vg("localcsi-a", 4, 4), make_vg("localcsi-b", 3), pool_in="localcsi-a")
    driver = ControllerDriver(backend)
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB))
    snap = snapshot_of(driver, source.id)
    restored = driver.create_volume(CreateVolumeRequest("r", (BLOCK,), source=Source(SourceKind.SNAPSHOT, snap)))
    assert backend.plans[-1].fill is Fill.BLOCK_COPY
    assert restored.size_bytes == GiB, "without required_bytes a restore is as large as its source"
    clone = driver.create_volume(
        CreateVolumeRequest("c", (BLOCK,), parameters=THIN, source=Source(SourceKind.VOLUME, source.id))
    )
    assert backend.plans[-1].fill is Fill.BLOCK_COPY, "a thick source is copied even into a thin volume"
    assert clone.lvm_type is LvmType.THIN
    with pytest.raises(OutOfRange):
        driver.create_volume(
            CreateVolumeRequest(
                "small",
                (BLOCK,),
                required_bytes=GiB // 2,
                limit_bytes=GiB // 2,
                source=Source(SourceKind.VOLUME, source.id),
            )
        )


def test_a_thick_clone_is_refused_before_anything_is_made_when_its_source_vg_would_have_no_extent_left() -> None:
    # Found by the 10,000-request CSI fuzz: the clone's LV was made, then its temporary snapshot of the
    # source found no free extent, and the refused request left the new LV behind.
    backend = FakeBackend(make_vg("localcsi-b", 2))
    driver = ControllerDriver(backend)
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB))
    clone = CreateVolumeRequest("c", (BLOCK,), required_bytes=GiB, source=Source(SourceKind.VOLUME, source.id))
    before = dict(backend.lvs)
    with pytest.raises(ResourceExhausted, match="left free besides the volume, for the temporary snapshot"):
        driver.create_volume(clone)
    assert backend.lvs == before and len(backend.plans) == 1, "nothing was made for the refused clone"


def test_a_thick_clone_into_another_vg_is_refused_when_its_source_vg_is_full() -> None:
    backend = FakeBackend(make_vg("localcsi-a", 8), make_vg("localcsi-b", 1), pool_in="localcsi-a")
    driver = ControllerDriver(backend)
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB))
    assert source.ref.vg == "localcsi-b"
    thin_clone = CreateVolumeRequest("c", (BLOCK,), parameters=THIN, source=Source(SourceKind.VOLUME, source.id))
    with pytest.raises(ResourceExhausted, match="localcsi-b needs 4 MiB free for the temporary snapshot"):
        driver.create_volume(thin_clone)
    assert len(backend.lvs) == 1


def test_a_thick_clone_leaving_one_extent_in_its_source_vg_is_made() -> None:
    backend = FakeBackend(make_vg("localcsi-b", 2))
    driver = ControllerDriver(backend)
    source = driver.create_volume(CreateVolumeRequest("src", (BLOCK,), required_bytes=GiB - EXTENT))
    clone = driver.create_volume(CreateVolumeRequest("c", (BLOCK,), source=Source(SourceKind.VOLUME, source.id)))
    assert clone.size_bytes == GiB - EXTENT and backend.plans[-1].fill is Fill.BLOCK_COPY
