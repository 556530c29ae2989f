"""The LogicalVolume CRD's rules for Device and MountPoint volumes, on the real kube-apiserver: what the
controller writes is stored unchanged; a wrong VG, lvmType, access, source, mediaType or limitBytes is
refused with a message naming it; volumeType, mediaType and limitBytes never change; status carries the
disk or mount point taken."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.exclusive import MOUNTPOINT_GROUP, device_vg_name
from localcsi.core.ids import make_ref
from localcsi.core.names import volume_lv_name
from localcsi.core.params import MediaType, VolumeParams, VolumeType
from localcsi.driver.cluster_exclusive import exclusive_resource
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.k8s.errors import Invalid
from localcsi.k8s.resources import LOGICAL_VOLUME, CustomResources
from localcsi.testing.cluster import KubeCluster

pytestmark = pytest.mark.cluster

Object = dict[str, Any]
GIB = 1024**3
MOUNT = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)


@pytest.fixture(scope="module")
def controller(kube_cluster: KubeCluster) -> CustomResources:
    return CustomResources(kube_cluster.kube_api("localcsi-csi-controller"), LOGICAL_VOLUME)


@pytest.fixture(scope="module")
def agent(kube_cluster: KubeCluster) -> CustomResources:
    return CustomResources(kube_cluster.kube_api("localcsi-agent"), LOGICAL_VOLUME)


def body(kind: VolumeType) -> Object:
    name = f"pvc-{uuid.uuid4()}"
    group = device_vg_name(name) if kind is VolumeType.DEVICE else MOUNTPOINT_GROUP
    media = MediaType.SSD if kind is VolumeType.DEVICE else None
    request = CreateVolumeRequest(name, (MOUNT,), required_bytes=GIB, limit_bytes=2 * GIB)
    params = VolumeParams(volume_type=kind, media_type=media)
    return dict(exclusive_resource(make_ref("node-1", group, volume_lv_name(name)), request, params, "ext4", "mount"))


def as_lvm(spec: Object) -> None:
    """A Device volume's spec turned into an LVM volume's, its limitBytes kept."""
    spec.update(volumeType="LVM", vgName="localcsi-a")
    del spec["mediaType"]


INVALID: dict[str, tuple[VolumeType, Callable[[Object], None], str]] = {
    "Device in a plain VG": (VolumeType.DEVICE, lambda s: s.update(vgName="localcsi-a"), "localcsi-dev-<hex>"),
    "Device striped": (VolumeType.DEVICE, lambda s: s.update(lvmType="raid1"), "its lvmType linear"),
    "Device from a snapshot": (
        VolumeType.DEVICE,
        lambda s: s.update(source={"kind": "Snapshot", "id": "node-1/vg/snap-1", "fill": "block-copy", "size": 1}),
        "starts empty",
    ),
    "MountPoint with lvmType": (VolumeType.MOUNTPOINT, lambda s: s.update(lvmType="linear"), "has no lvmType"),
    "MountPoint as block": (VolumeType.MOUNTPOINT, lambda s: s.update(accessType="block"), "accessType is mount"),
    "MountPoint in a VG": (VolumeType.MOUNTPOINT, lambda s: s.update(vgName="localcsi-a"), "localcsi-mountpoint"),
    "mediaType on a MountPoint": (VolumeType.MOUNTPOINT, lambda s: s.update(mediaType="hdd"), "only for a Device"),
    "unknown mediaType": (VolumeType.DEVICE, lambda s: s.update(mediaType="nvme"), 'Unsupported value: "nvme"'),
    "unknown volumeType": (VolumeType.DEVICE, lambda s: s.update(volumeType="Tape"), 'Unsupported value: "Tape"'),
    "limitBytes on LVM": (
        VolumeType.DEVICE,
        as_lvm,
        "limitBytes is only for a Device or MountPoint volume",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_exclusive_volumes_are_refused_with_a_clear_message(controller: CustomResources, case: str) -> None:
    kind, change, message = INVALID[case]
    wanted = body(kind)
    change(wanted["spec"])
    with pytest.raises(Invalid) as refused:
        controller.create(wanted)
    assert message in refused.value.message
    assert controller.get(wanted["metadata"]["name"]) is None


@pytest.mark.parametrize("kind", [VolumeType.DEVICE, VolumeType.MOUNTPOINT])
def test_an_exclusive_volume_is_stored_unchanged_and_its_type_never_changes(
    controller: CustomResources, agent: CustomResources, kind: VolumeType
) -> None:
    wanted = body(kind)
    stored = controller.create(wanted)
    assert stored["spec"] == wanted["spec"], "the schema declares every field: nothing pruned"
    name = stored["metadata"]["name"]
    for change in ({"volumeType": "LVM"}, {"limitBytes": 3 * GIB}):
        with pytest.raises(Invalid, match="volumeType, mediaType and limitBytes are immutable"):
            controller.patch(name, {"spec": change})
    where = {"device": "/dev/disk/by-id/virtio-data-c"} if kind is VolumeType.DEVICE else {"mountPoint": "/mnt/a"}
    status = agent.patch_status(name, {"phase": "Ready", "currentSize": GIB, **where})["status"]
    assert {key: status[key] for key in where} == where
    controller.delete(name)
