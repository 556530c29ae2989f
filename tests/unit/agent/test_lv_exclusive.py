"""The agent's Device and MountPoint volumes: a LogicalVolume carried out within the node's listConfig.

MountPoint volumes run the real ``LocalMountPoints`` on directories under tmp_path (only the mount
table and statfs are faked). Device volumes run a stand-in for ``LocalDevices`` (its disk logic has
its own tests in tests/unit/driver/test_devices.py; the real disks are in the cluster tier), which
shows what the reconciler asks of it and reports back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from localcsi.agent.lv_exclusive import ExclusiveVolumes
from localcsi.agent.lv_reconciler import LogicalVolumeReconciler
from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import ResourceExhausted
from localcsi.core.exclusive import MOUNTPOINT_GROUP, OWNER_MARKER, VOLUME_DIR, device_vg_name
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.model import LogicalVolume, Volume, volume_from_lv
from localcsi.core.names import volume_lv_name
from localcsi.core.nodestorage import StorageSpec, parse_spec
from localcsi.core.params import MediaType, VolumeParams, VolumeType
from localcsi.core.sizes import GiB
from localcsi.core.tags import LvKind, LvMetadata, decode_tags, encode_tags
from localcsi.driver.cluster_exclusive import exclusive_resource
from localcsi.driver.devices import DevicePlan, LocalDevices
from localcsi.driver.mountpoints import LocalMountPoints
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.fs.types import DeviceNumber, FilesystemOps, FsUsage, Mount
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner
from localcsi.resources import logicalvolume as llv
from localcsi.testing.fake_resources import FakeResources

pytestmark = pytest.mark.unit

NODE = "node-1"
MOUNT = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)


class Life:
    def __init__(self) -> None:
        self.should_exit = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self.should_exit.wait(timeout)


class FakeFs:
    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes

    def list_mounts(self) -> list[Mount]:
        return [Mount(path, "/dev/vdx", "ext4", (), DeviceNumber(254, 1)) for path in self.sizes]

    def usage(self, path: str) -> FsUsage:
        return FsUsage(self.sizes[path], self.sizes[path], 0, 100, 100, 0)


class StubLvm:
    """The LVs the stand-in devices made, as lvs would show them."""

    def __init__(self) -> None:
        self.lvs: dict[tuple[str, str], LogicalVolume] = {}

    def get_lv(self, vg: str, name: str) -> LogicalVolume | None:
        return self.lvs.get((vg, name))

    def list_pvs(self, vg: str | None = None) -> list[Any]:
        return []


class StubDevices:
    """Stands in for LocalDevices: one disk per plan, named after its media type."""

    def __init__(self, lvm: StubLvm) -> None:
        self.lvm = lvm
        self.plans: list[DevicePlan] = []
        self.deleted: list[LvRef] = []

    def create(self, plan: DevicePlan) -> Volume:
        self.plans.append(plan)
        tags = (*plan.tags, "localcsi.io/disk=/dev/disk/by-id/virtio-ssd-1")
        lv = LogicalVolume(plan.ref.vg, plan.ref.lv, 2 * GiB - 4 * 1024**2, "-wi-a-----", tags=tags)
        self.lvm.lvs[(lv.vg, lv.name)] = lv
        volume = volume_from_lv(NODE, lv)
        assert volume is not None
        return volume

    def delete(self, ref: LvRef) -> None:
        self.deleted.append(ref)
        self.lvm.lvs.pop((ref.vg, ref.lv), None)


@pytest.fixture
def resources() -> Iterator[FakeResources]:
    fake = FakeResources()
    yield fake
    fake.close()


def mount_table(tmp_path: Path, **sizes: int) -> FakeFs:
    table = {}
    for name, size in sizes.items():
        (tmp_path / name).mkdir()
        table[str(tmp_path / name)] = size
    return FakeFs(table)


def agent(
    resources: FakeResources, spec: dict[str, Any], fs: FakeFs | None = None, devices: StubDevices | None = None
) -> LogicalVolumeReconciler:
    storage = parse_spec(spec)

    def storage_spec() -> StorageSpec:
        return storage

    points = LocalMountPoints(cast(FilesystemOps, fs or FakeFs({})), NODE, (), storage.mount_points.accepts)
    lvm = devices.lvm if devices is not None else StubLvm()
    exclusive = ExclusiveVolumes(NODE, SubprocessRunner(), storage_spec, lvm=cast(Lvm, lvm),
                                 devices=cast(LocalDevices, devices), mount_points=points)  # fmt: skip
    return LogicalVolumeReconciler(None, NODE, None, Life(), resources=resources, exclusive=exclusive)


def resource(name: str, kind: VolumeType, size: int = GiB, media: MediaType | None = None) -> llv.LogicalVolume:
    group = device_vg_name(name) if kind is VolumeType.DEVICE else MOUNTPOINT_GROUP
    request = CreateVolumeRequest(name, (MOUNT,), required_bytes=size)
    params = VolumeParams(volume_type=kind, media_type=media)
    return exclusive_resource(make_ref(NODE, group, volume_lv_name(name)), request, params, "ext4", "mount")


def test_a_mountpoint_volume_takes_the_smallest_empty_one_that_listconfig_selects(
    tmp_path: Path, resources: FakeResources
) -> None:
    fs = mount_table(tmp_path, a=4 * GiB, b=2 * GiB, small=GiB)
    spec = {"listConfig": {"mountPoints": {"include": [f"{tmp_path}/[ab]"]}}}
    reconciler = agent(resources, spec, fs)
    name = llv.name(resources.create(resource("pvc-1", VolumeType.MOUNTPOINT, GiB)))

    reconciler.reconcile(name)

    status = llv.status(resources.get(name) or {})
    assert status["phase"] == "Ready" and status["mountPoint"] == str(tmp_path / "b")
    assert status["currentSize"] == 2 * GiB and status["volumeId"] == f"{NODE}/{MOUNTPOINT_GROUP}/{name}"
    assert (tmp_path / "b" / OWNER_MARKER).is_file() and (tmp_path / "b" / VOLUME_DIR).is_dir()
    assert list((tmp_path / "small").iterdir()) == [], "the mount point listConfig does not give is untouched"

    (tmp_path / "b" / VOLUME_DIR / "data").write_text("written by a pod")
    resources.delete(name)
    reconciler.reconcile(name)
    assert resources.get(name) is None, "the finalizer is released once the mount point is cleared"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [], "content and marker are gone"


def test_a_retry_after_a_crash_finds_the_first_attempts_mount_point(tmp_path: Path, resources: FakeResources) -> None:
    fs = mount_table(tmp_path, a=GiB, b=GiB)
    spec = {"listConfig": {"mountPoints": {"include": [f"{tmp_path}/.*"]}}}
    name = llv.name(resources.create(resource("pvc-1", VolumeType.MOUNTPOINT)))
    first = agent(resources, spec, fs)
    _, taken = first.exclusive.create(resources.get(name) or {})  # the agent died before its status write
    agent(resources, spec, fs).reconcile(name)
    status = llv.status(resources.get(name) or {})
    assert status["phase"] == "Ready" and status["mountPoint"] == taken
    assert [p for p in fs.sizes if (Path(p) / OWNER_MARKER).exists()] == [taken], "one pick, not two"


def test_without_listconfig_nothing_is_taken_and_the_volume_fails(tmp_path: Path, resources: FakeResources) -> None:
    fs = mount_table(tmp_path, a=4 * GiB)
    name = llv.name(resources.create(resource("pvc-1", VolumeType.MOUNTPOINT)))
    agent(resources, {}, fs).reconcile(name)
    status = llv.status(resources.get(name) or {})
    assert status["phase"] == "Failed" and status["code"] == "ResourceExhausted"
    assert list((tmp_path / "a").iterdir()) == []


def test_a_device_volume_reports_its_disk_and_delete_wipes_through_the_devices(resources: FakeResources) -> None:
    devices = StubDevices(StubLvm())
    reconciler = agent(resources, {}, devices=devices)
    name = llv.name(resources.create(resource("pvc-1", VolumeType.DEVICE, GiB, MediaType.SSD)))

    reconciler.reconcile(name)

    [plan] = devices.plans
    assert (plan.name, plan.required_bytes, plan.media_type) == ("pvc-1", GiB, MediaType.SSD)
    assert plan.ref == LvRef(NODE, device_vg_name("pvc-1"), name)
    assert decode_tags(plan.tags) == LvMetadata(LvKind.VOLUME, "pvc-1", GiB, None, "ext4", "mount")
    status = llv.status(resources.get(name) or {})
    assert status["phase"] == "Ready" and status["device"] == "/dev/disk/by-id/virtio-ssd-1"
    assert status["volumeId"] == f"{NODE}/{device_vg_name('pvc-1')}/{name}"

    reconciler.reconcile(name)  # a resync of a Ready volume: nothing made twice
    assert len(devices.plans) == 1

    resources.delete(name)
    reconciler.reconcile(name)
    assert devices.deleted == [plan.ref] and resources.get(name) is None


def test_a_device_lv_of_another_volume_is_left_alone_on_delete(resources: FakeResources) -> None:
    devices = StubDevices(StubLvm())
    reconciler = agent(resources, {}, devices=devices)
    name = llv.name(resources.create(resource("pvc-1", VolumeType.DEVICE)))
    reconciler.reconcile(name)
    ref = devices.plans[0].ref
    other = encode_tags(LvMetadata(LvKind.VOLUME, "someone-else", GiB, None, "ext4", "mount"))
    devices.lvm.lvs[(ref.vg, ref.lv)] = LogicalVolume(ref.vg, ref.lv, GiB, "-wi-a-----", tags=other)
    resources.delete(name)
    reconciler.reconcile(name)
    assert devices.deleted == [] and resources.get(name) is None


def test_a_device_the_agent_cannot_find_fails_with_the_devices_reason(resources: FakeResources) -> None:
    devices = StubDevices(StubLvm())

    def exhausted(plan: DevicePlan) -> Volume:
        raise ResourceExhausted("no free ssd disk of at least 1 GiB usable (/dev/vdc: blkid finds ext4 on it)")

    devices.create = exhausted  # type: ignore[method-assign]
    reconciler = agent(resources, {}, devices=devices)
    name = llv.name(resources.create(resource("pvc-1", VolumeType.DEVICE, media=MediaType.SSD)))
    reconciler.reconcile(name)
    status = llv.status(resources.get(name) or {})
    assert status["phase"] == "Failed" and status["code"] == "ResourceExhausted"
    assert "blkid finds ext4" in status["message"]
