"""Cluster mode's Device and MountPoint volumes, controller side: the LogicalVolume written, the node
chosen, retries and capacity, over an in-memory apiserver with a scripted agent."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from test_cluster_backend import FakeAgent

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import AlreadyExists, InvalidArgument, ResourceExhausted
from localcsi.core.exclusive import MOUNTPOINT_GROUP, device_vg_name, usable_bytes
from localcsi.core.ids import make_ref
from localcsi.core.names import volume_lv_name
from localcsi.core.params import MediaType, VolumeParams, VolumeType
from localcsi.core.sizes import GiB
from localcsi.driver.cluster_backend import ClusterBackend
from localcsi.driver.cluster_exclusive import ClusterExclusiveVolumes, exclusive_mismatch, exclusive_resource
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.requests import CapacityRequest, CreateVolumeRequest
from localcsi.driver.topology import TopologyRequirement
from localcsi.resources import logicalvolume as llv
from localcsi.testing.fake_resources import FakeResources

pytestmark = pytest.mark.unit

MOUNT = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)
BLOCK = Capability("SINGLE_NODE_WRITER", AccessType.BLOCK)
Obj = dict[str, Any]


def nls(node: str, disks: dict[str, tuple[int, str]], mounts: dict[str, int]) -> Obj:
    """A report with free disks (path -> size, media type) and mount points (path -> size), no VG."""
    info = {
        "deviceInfo": [
            {"name": path, "total": size, "mediaType": media, "readOnly": False, "condition": "DiskReady"}
            for path, (size, media) in disks.items()
        ],
        "mountPoints": [{"name": path, "total": size, "condition": "DiskReady"} for path, size in mounts.items()],
    }
    filtered = {"devices": sorted(disks), "mountPoints": sorted(mounts)}
    return {
        "metadata": {"name": node},
        "spec": {"nodeName": node},
        "status": {"nodeStorageInfo": info, "filteredStorageInfo": filtered},
    }


@pytest.fixture
def volumes() -> Iterator[FakeResources]:
    fake = FakeResources()
    yield fake
    fake.close()


@pytest.fixture
def storages() -> Iterator[FakeResources]:
    fake = FakeResources()
    reports = (
        nls("node-1", {"/dev/vdb": (4 * GiB, "hdd")}, {"/mnt/a": 2 * GiB}),
        nls("node-2", {"/dev/vdb": (2 * GiB, "ssd"), "/dev/vdc": (3 * GiB, "ssd")}, {}),
    )
    for body in reports:
        fake.create({key: value for key, value in body.items() if key != "status"})
        fake.patch_status(body["metadata"]["name"], body["status"])
    yield fake
    fake.close()


@pytest.fixture
def agent(volumes: FakeResources) -> Iterator[FakeAgent]:
    fake = FakeAgent(volumes).start()
    yield fake
    fake.stop()


@pytest.fixture
def driver(volumes: FakeResources, storages: FakeResources) -> Iterator[ControllerDriver]:
    cluster = ClusterBackend(volumes, storages, timeout=2.0, recheck=0.2).start(sync_timeout=5)
    yield ControllerDriver(cluster, exclusive=ClusterExclusiveVolumes(cluster))
    cluster.stop()


def request(
    name: str = "pvc-1", size: int = GiB, node: str | None = None, cap: Capability = MOUNT, **params: str
) -> CreateVolumeRequest:
    topology = TopologyRequirement(preferred=({"topology.localcsi.io/node": node},)) if node else None
    return CreateVolumeRequest(name, (cap,), size, 0, params, None, topology)


def test_a_device_volume_is_a_logicalvolume_on_the_schedulers_node(
    driver: ControllerDriver, volumes: FakeResources, agent: FakeAgent
) -> None:
    volume = driver.create_volume(request(node="node-2", volumeType="Device", mediaType="ssd"))
    lv = volume_lv_name("pvc-1")
    assert volume.id == f"node-2/{device_vg_name('pvc-1')}/{lv}", "the id standalone mode gives"
    spec = llv.spec(volumes.get(lv) or {})
    assert spec["volumeType"] == "Device" and spec["mediaType"] == "ssd" and spec["lvmType"] == "linear"
    assert (spec["nodeName"], spec["vgName"], spec["requiredBytes"], spec["fsType"]) == (
        "node-2", device_vg_name("pvc-1"), GiB, "ext4"
    )  # fmt: skip
    assert [v.id for v in driver.list_volumes(0, "").entries] == [volume.id], "listed once"
    assert driver.create_volume(request(node="node-2", volumeType="Device", mediaType="ssd")) == volume
    with pytest.raises(AlreadyExists, match="does not fit"):
        driver.create_volume(request(size=2 * GiB, node="node-2", volumeType="Device", mediaType="ssd"))

    driver.delete_volume(volume.id)
    assert volumes.get(lv) is None


def test_a_mountpoint_volume_is_filesystem_only_and_has_no_lvmtype(
    driver: ControllerDriver, volumes: FakeResources, agent: FakeAgent
) -> None:
    with pytest.raises(InvalidArgument, match="filesystem access only"):
        driver.create_volume(request(node="node-1", cap=BLOCK, volumeType="MountPoint"))
    assert volumes.list()[0] == [], "nothing written for a refused request"
    volume = driver.create_volume(request(node="node-1", volumeType="MountPoint"))
    assert volume.id == f"node-1/{MOUNTPOINT_GROUP}/{volume_lv_name('pvc-1')}"
    spec = llv.spec(volumes.get(volume.ref.lv) or {})
    assert spec["volumeType"] == "MountPoint" and "lvmType" not in spec and "mediaType" not in spec
    assert driver.get_volume(volume.id) == volume
    with pytest.raises(AlreadyExists, match="it is a MountPoint volume"):
        driver.create_volume(request(node="node-1"))
    with pytest.raises(AlreadyExists, match="it is a MountPoint volume"):
        driver.create_volume(request(node="node-1", volumeType="Device"))


def test_without_a_scheduled_node_the_first_node_reporting_a_fit_is_taken(
    driver: ControllerDriver, volumes: FakeResources, agent: FakeAgent
) -> None:
    ssd = driver.create_volume(request("pvc-ssd", 2 * GiB, volumeType="Device", mediaType="ssd"))
    assert ssd.ref.node == "node-2", "node-1 has no ssd"
    big = driver.create_volume(request("pvc-big", 3 * GiB + GiB // 2, volumeType="Device"))
    assert big.ref.node == "node-1", "only node-1's 4 GiB disk fits"
    with pytest.raises(ResourceExhausted, match="no node reports a free Device"):
        driver.create_volume(request("pvc-huge", 8 * GiB, volumeType="Device"))
    assert volumes.get(volume_lv_name("pvc-huge")) is None


def test_capacity_is_the_free_disks_or_mount_points_reported(driver: ControllerDriver) -> None:
    def capacity(node: str | None = None, **params: str) -> tuple[int, int]:
        topology = {"topology.localcsi.io/node": node} if node else None
        answer = driver.capacity(CapacityRequest(params, (), topology))
        return answer.available_bytes, answer.maximum_volume_bytes

    ssd = (usable_bytes(2 * GiB), usable_bytes(3 * GiB))
    assert capacity(volumeType="Device", mediaType="ssd") == (sum(ssd), ssd[1])
    assert capacity("node-1", volumeType="Device", mediaType="ssd") == (0, 0)
    assert capacity("node-1", volumeType="Device") == (usable_bytes(4 * GiB),) * 2
    assert capacity(volumeType="MountPoint") == (2 * GiB, 2 * GiB)


def test_a_resource_of_the_same_name_for_another_request_is_told_apart() -> None:
    at = make_ref("node-2", device_vg_name("pvc-1"), volume_lv_name("pvc-1"))
    ssd = VolumeParams(volume_type=VolumeType.DEVICE, media_type=MediaType.SSD)
    body = exclusive_resource(at, request(), ssd, "ext4", "mount")
    assert exclusive_mismatch(body, body) is None
    other = exclusive_resource(at, request(), dataclasses.replace(ssd, media_type=MediaType.HDD), "ext4", "mount")
    assert exclusive_mismatch(body, other) == "its mediaType is ssd"
    bigger = exclusive_resource(at, request(size=2 * GiB), ssd, "ext4", "mount")
    assert exclusive_mismatch(body, bigger) == f"it asks for {GiB} bytes"
    xfs = exclusive_resource(at, request(), ssd, "xfs", "mount")
    assert exclusive_mismatch(body, xfs) == "it was made for ext4"
