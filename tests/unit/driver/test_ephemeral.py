"""Inline ephemeral volumes through the node service, over the fake backend and filesystems: what is
made at publish, removed at unpublish, refused, and collected after the pod has gone."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import replace

import pytest
from controller_fakes import FakeBackend, make_vg
from node_fakes import DIRECTORY, NODE, FakeFilesystems, code_of, mount_cap

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.ephemeral import EPHEMERAL_CONTEXT_KEY, POD_UID_CONTEXT_KEY
from localcsi.core.model import LogicalVolume
from localcsi.core.names import volume_lv_name
from localcsi.core.sizes import MiB
from localcsi.driver.backend import ephemeral_pod_dir, io_limits
from localcsi.driver.ephemeral import Collected, EphemeralVolumes
from localcsi.driver.node import NodeService, PublishRequest
from localcsi.driver.requests import CreateVolumeRequest

pytestmark = pytest.mark.unit

VG = "localcsi-pool"
UID = "0f6b1c2a-3d4e-4f50-8a9b-0c1d2e3f4a5b"
POD_DIR = f"/var/lib/kubelet/pods/{UID}"
TARGET = f"{POD_DIR}/volumes/kubernetes.io~csi/scratch/mount"
KUBELET_ID = "csi-" + hashlib.sha256(f"{UID}scratch".encode()).hexdigest()


class BackendLvm:
    """The node service's view of the fake backend's LVs, each with a device number."""

    def __init__(self, backend: FakeBackend, fs: FakeFilesystems) -> None:
        self.backend = backend
        self.fs = fs

    def get_lv(self, vg: str, name: str) -> LogicalVolume | None:
        lv = self.backend.lvs.get((vg, name))
        if lv is None:
            return None
        lv = replace(lv, kernel_major=253, kernel_minor=zlib.crc32(name.encode()) % 1000)
        self.fs.add_lv(lv)
        return lv

    def activate(self, vg: str, name: str) -> None:
        raise AssertionError("the fake backend's LVs are active")


class Harness:
    def __init__(self) -> None:
        self.backend = FakeBackend(make_vg(VG, 4))
        self.fs = FakeFilesystems()
        self.fs.paths[POD_DIR] = DIRECTORY
        self.ephemeral = EphemeralVolumes(self.backend, self.fs)
        self.service = NodeService(NODE, self.fs, BackendLvm(self.backend, self.fs), ephemeral=self.ephemeral)

    def publish(self, attributes: dict[str, str], *, target: str = TARGET, cap: Capability | None = None) -> None:
        context = {EPHEMERAL_CONTEXT_KEY: "true", POD_UID_CONTEXT_KEY: UID, **attributes}
        self.service.publish(PublishRequest(KUBELET_ID, target, cap or mount_cap(""), volume_context=context))

    def lv(self) -> LogicalVolume | None:
        return self.backend.lvs.get((VG, volume_lv_name(KUBELET_ID)))


@pytest.fixture
def node() -> Harness:
    return Harness()


def test_publish_makes_formats_and_mounts_the_volume_once(node: Harness) -> None:
    node.publish({"size": "64Mi", "vgName": VG, "writeBps": "1Mi"})
    node.publish({"size": "64Mi", "vgName": VG, "writeBps": "1Mi"})  # the kubelet retries

    lv = node.lv()
    assert lv is not None and lv.size_bytes == 64 * MiB
    assert len(node.backend.lvs) == 1
    volume = node.backend.volumes()[0]
    assert ephemeral_pod_dir(volume) == POD_DIR
    assert io_limits(lv.tags).as_strings() == {"writeBps": str(MiB)}
    assert [change[0] for change in node.fs.changes].count("mkfs") == 1
    assert len(node.fs.mounts[TARGET]) == 1


def test_unpublish_removes_the_volume_and_a_repeat_is_harmless(node: Harness) -> None:
    node.publish({"size": "64Mi"})
    node.service.unpublish(KUBELET_ID, TARGET)
    assert node.lv() is None and node.backend.deleted
    assert not node.fs.mounts[TARGET] and TARGET not in node.fs.paths

    node.service.unpublish(KUBELET_ID, TARGET)
    assert len(node.backend.deleted) == 1


def test_stats_answer_for_the_kubelets_id(node: Harness) -> None:
    node.publish({"size": "64Mi"})
    assert node.service.stats(KUBELET_ID, TARGET).usage is not None
    node.service.unpublish(KUBELET_ID, TARGET)
    assert code_of(node.service.stats, KUBELET_ID, TARGET) == "NOT_FOUND"


@pytest.mark.parametrize(
    ("attributes", "target", "cap"),
    [
        ({"size": "lots"}, TARGET, None),
        ({"size": "0"}, TARGET, None),
        ({"sizee": "1Gi"}, TARGET, None),
        ({"volumeType": "Device"}, TARGET, None),
        ({"vgName": "-rf"}, TARGET, None),
        ({}, "/mnt/scratch", None),
        ({}, f"/var/lib/kubelet/pods/{UID}/../{UID}/volumes/kubernetes.io~csi/scratch/mount", None),
        ({}, TARGET.replace(UID, "0f6b1c2a-3d4e-4f50-8a9b-000000000000"), None),
        ({}, TARGET, Capability("SINGLE_NODE_WRITER", AccessType.BLOCK)),
    ],
)
def test_bad_requests_are_invalid_and_make_nothing(
    node: Harness, attributes: dict[str, str], target: str, cap: Capability | None
) -> None:
    assert code_of(lambda: node.publish(attributes, target=target, cap=cap)) == "INVALID_ARGUMENT"
    assert not node.backend.lvs and not node.fs.changes


def test_a_plugin_without_ephemeral_support_refuses_them() -> None:
    fs = FakeFilesystems()
    service = NodeService(NODE, fs, BackendLvm(FakeBackend(), fs))
    request = PublishRequest(KUBELET_ID, TARGET, mount_cap(), volume_context={EPHEMERAL_CONTEXT_KEY: "true"})
    assert code_of(service.publish, request) == "INVALID_ARGUMENT"


def test_collect_keeps_volumes_while_their_pod_directory_exists(node: Harness) -> None:
    node.publish({"size": "64Mi"})
    node.fs.mounts[TARGET].clear()  # the plugin died; the kubelet unmounted nothing
    assert node.ephemeral.collect().removed == ()
    assert node.lv() is not None

    del node.fs.paths[POD_DIR]  # the pod is gone from the node
    collected = node.ephemeral.collect()
    assert len(collected.removed) == 1 and node.lv() is None


def test_collect_keeps_an_open_volume_even_when_its_pod_is_gone(node: Harness) -> None:
    node.publish({"size": "64Mi"})
    key = (VG, volume_lv_name(KUBELET_ID))
    node.backend.lvs[key] = replace(node.backend.lvs[key], attr="-wi-ao----")
    del node.fs.paths[POD_DIR]
    assert node.ephemeral.collect().kept == (f"{NODE}/{VG}/{key[1]}",)
    assert node.lv() is not None


def test_collect_leaves_volumes_kubernetes_provisioned(node: Harness) -> None:
    node.ephemeral.driver.create_volume(CreateVolumeRequest("pvc-1", (mount_cap(),), 64 * MiB))
    del node.fs.paths[POD_DIR]
    assert node.ephemeral.collect() == Collected((), ())
    assert len(node.backend.lvs) == 1
