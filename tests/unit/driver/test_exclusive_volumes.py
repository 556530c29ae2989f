"""The controller driver's Device volumes: routing, idempotency, and what a whole disk refuses."""

from __future__ import annotations

from typing import cast

import pytest
from controller_fakes import BLOCK, MOUNT, NODE, FakeBackend, make_vg

from localcsi.core.errors import AlreadyExists, InvalidArgument, ResourceExhausted
from localcsi.core.exclusive import MOUNTPOINT_GROUP, device_vg_name
from localcsi.core.ids import LvRef
from localcsi.core.model import LogicalVolume, Volume, volume_from_lv
from localcsi.core.names import volume_lv_name
from localcsi.core.params import MediaType, VolumeParams, parse_volume_params
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import LvKind, LvMetadata, Source, SourceKind, encode_tags
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.devices import DevicePlan
from localcsi.driver.exclusive_volumes import ExclusiveVolumes, MountPointBackend, device_plan, refuse_block_mount_point
from localcsi.driver.requests import CapacityRequest, CreateVolumeRequest, ExpandVolumeRequest

pytestmark = pytest.mark.unit

DEVICE = {"volumeType": "Device"}
DEVICE_PARAMS: VolumeParams = parse_volume_params(DEVICE)


class FakeDevices:
    """Disks of 1 and 4 GiB (ssd, hdd); a volume's LV goes into the backend, as lvm2 would show it."""

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.free = {"/dev/vdb": (1020 * MiB, MediaType.SSD), "/dev/vdc": (4092 * MiB, MediaType.HDD)}
        self.plans: list[DevicePlan] = []
        self.deleted: list[LvRef] = []

    def create(self, plan: DevicePlan) -> Volume:
        self.plans.append(plan)
        fits = [(size, disk) for disk, (size, media) in self.free.items()
                if size >= plan.required_bytes and plan.media_type in (None, media)]  # fmt: skip
        if not fits:
            raise ResourceExhausted("no free disk")
        size, disk = min(fits)
        del self.free[disk]
        self.backend.lvs[(plan.ref.vg, plan.ref.lv)] = LogicalVolume(
            plan.ref.vg, plan.ref.lv, size, "-wi-a-----", layout=("linear",), tags=plan.tags
        )
        volume = self.backend.get_volume(plan.ref)
        assert volume is not None
        return volume

    def delete(self, ref: LvRef) -> None:
        self.deleted.append(ref)
        self.backend.lvs.pop((ref.vg, ref.lv), None)

    def capacity(self, media_type: MediaType | None) -> tuple[int, int]:
        sizes = [size for size, media in self.free.values() if media_type in (None, media)]
        return sum(sizes), max(sizes, default=0)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(make_vg("localcsi-a", 8))


@pytest.fixture
def devices(backend: FakeBackend) -> FakeDevices:
    return FakeDevices(backend)


@pytest.fixture
def driver(backend: FakeBackend, devices: FakeDevices) -> ControllerDriver:
    return ControllerDriver(backend, exclusive=ExclusiveVolumes(devices))


def test_a_device_volume_gets_its_own_vg_and_a_retry_the_same_volume(
    driver: ControllerDriver, devices: FakeDevices, backend: FakeBackend
) -> None:
    request = CreateVolumeRequest("pvc-d", (MOUNT,), required_bytes=512 * MiB, parameters=DEVICE)
    volume = driver.create_volume(request)
    assert volume.ref.vg == device_vg_name("pvc-d") and volume.size_bytes == 1020 * MiB
    assert volume.fs_type == "ext4"
    assert driver.create_volume(request) == volume
    assert len(devices.plans) == 1, "a retry finds the volume without asking for a disk"
    assert not backend.plans, "nothing was placed in an LVM volume group"


def test_the_same_name_as_another_type_is_already_exists(driver: ControllerDriver) -> None:
    driver.create_volume(CreateVolumeRequest("pvc-d", (BLOCK,), required_bytes=GiB, parameters=DEVICE))
    with pytest.raises(AlreadyExists, match="Device volume"):
        driver.create_volume(CreateVolumeRequest("pvc-d", (BLOCK,), required_bytes=GiB))
    driver.create_volume(CreateVolumeRequest("pvc-l", (BLOCK,), required_bytes=GiB))
    with pytest.raises(AlreadyExists, match="LVM volume"):
        driver.create_volume(CreateVolumeRequest("pvc-l", (BLOCK,), required_bytes=GiB, parameters=DEVICE))


def test_media_type_reaches_the_plan(driver: ControllerDriver, devices: FakeDevices) -> None:
    volume = driver.create_volume(
        CreateVolumeRequest("pvc-h", (BLOCK,), required_bytes=MiB, parameters={**DEVICE, "mediaType": "hdd"})
    )
    assert devices.plans[-1].media_type is MediaType.HDD and volume.size_bytes == 4092 * MiB


def test_a_disk_cannot_grow_be_snapshotted_or_cloned(driver: ControllerDriver) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-d", (BLOCK,), required_bytes=GiB, parameters=DEVICE))
    with pytest.raises(InvalidArgument, match="whole disk"):
        driver.expand_volume(ExpandVolumeRequest(volume.id, required_bytes=8 * GiB))
    with pytest.raises(InvalidArgument, match="whole disk"):
        driver.snapshots.create("snap-d", volume.id, {})
    with pytest.raises(InvalidArgument, match="whole disk"):
        driver.create_volume(CreateVolumeRequest("pvc-c", (BLOCK,), source=Source(SourceKind.VOLUME, volume.id)))
    with pytest.raises(InvalidArgument, match="starts empty"):
        driver.create_volume(
            CreateVolumeRequest("pvc-e", (BLOCK,), parameters=DEVICE, source=Source(SourceKind.VOLUME, volume.id))
        )


def test_delete_goes_to_the_devices_even_when_the_lv_is_already_gone(
    driver: ControllerDriver, devices: FakeDevices, backend: FakeBackend
) -> None:
    volume = driver.create_volume(CreateVolumeRequest("pvc-d", (BLOCK,), required_bytes=GiB, parameters=DEVICE))
    driver.delete_volume(volume.id)
    driver.delete_volume(volume.id)  # a crash after lvremove left the VG: the devices finish the job
    assert devices.deleted == [volume.ref, volume.ref]
    driver.delete_volume(f"node-2/{volume.ref.vg}/{volume.ref.lv}")  # another node's: not ours to touch
    assert len(devices.deleted) == 2 and not backend.deleted


def test_capacity_is_per_volume_type(driver: ControllerDriver) -> None:
    assert driver.capacity(CapacityRequest(DEVICE)).available_bytes == 1020 * MiB + 4092 * MiB
    assert driver.capacity(CapacityRequest(DEVICE)).maximum_volume_bytes == 4092 * MiB
    assert driver.capacity(CapacityRequest({**DEVICE, "mediaType": "ssd"})).available_bytes == 1020 * MiB
    assert driver.capacity(CapacityRequest()).available_bytes == 8 * GiB
    assert driver.capacity(CapacityRequest({"volumeType": "MountPoint"})).available_bytes == 0


def test_without_devices_a_device_volume_is_refused(backend: FakeBackend) -> None:
    driver = ControllerDriver(backend)
    with pytest.raises(InvalidArgument, match="not provisioned here"):
        driver.create_volume(CreateVolumeRequest("pvc-d", (BLOCK,), parameters=DEVICE))
    assert driver.capacity(CapacityRequest(DEVICE)).available_bytes == 0


def test_a_plan_needs_exactly_one_node() -> None:
    request = CreateVolumeRequest("pvc-d", (BLOCK,), parameters=DEVICE)
    plan = device_plan((NODE,), request, DEVICE_PARAMS, None, "block")
    assert plan.ref.node == NODE and plan.ref.vg == device_vg_name("pvc-d")
    with pytest.raises(Exception, match="one node"):
        device_plan((NODE, "node-2"), request, DEVICE_PARAMS, None, "block")


def test_list_volumes_includes_mount_point_volumes(backend: FakeBackend, devices: FakeDevices) -> None:
    lv = LogicalVolume(MOUNTPOINT_GROUP, volume_lv_name("pvc-m"), GiB, "-wi-a-----",
                       tags=encode_tags(LvMetadata(LvKind.VOLUME, "pvc-m", GiB)))  # fmt: skip
    mount_point_volume = volume_from_lv(NODE, lv)
    assert mount_point_volume is not None
    held = [mount_point_volume]

    class Points:
        def volumes(self) -> list[Volume]:
            return held

    driver = ControllerDriver(backend, exclusive=ExclusiveVolumes(devices, cast(MountPointBackend, Points())))
    driver.create_volume(CreateVolumeRequest("pvc-d", (BLOCK,), required_bytes=GiB, parameters=DEVICE))
    listed = [volume.name for volume in driver.list_volumes(0, "").entries]
    assert sorted(listed) == ["pvc-d", "pvc-m"]


def test_a_mount_point_volume_is_never_block_in_either_mode() -> None:
    mount_point = parse_volume_params({"volumeType": "MountPoint"})
    with pytest.raises(InvalidArgument, match="MountPoint volume is a directory"):
        refuse_block_mount_point(mount_point, "block")
    refuse_block_mount_point(mount_point, "mount")
    refuse_block_mount_point(parse_volume_params({"volumeType": "Device"}), "block")
