"""Inline ephemeral volume requests: the kubelet's id and paths, and volumeAttributes as parameters."""

from __future__ import annotations

import pytest

from localcsi.core.ephemeral import (
    is_ephemeral,
    is_kubelet_volume_id,
    parse_ephemeral,
    pod_dir,
)
from localcsi.core.errors import InvalidArgument
from localcsi.core.params import LvmType
from localcsi.core.sizes import DEFAULT_VOLUME_BYTES, MiB

pytestmark = pytest.mark.unit

UID = "0f6b1c2a-3d4e-4f50-8a9b-0c1d2e3f4a5b"
KUBELET_ID = "csi-" + "ab" * 32


def target(root: str = "/var/lib/kubelet") -> str:
    return f"{root}/pods/{UID}/volumes/kubernetes.io~csi/scratch/mount"


def test_only_the_kubelets_marker_makes_a_publish_ephemeral() -> None:
    assert is_ephemeral({"csi.storage.k8s.io/ephemeral": "true"})
    assert not is_ephemeral({"csi.storage.k8s.io/ephemeral": "false"})
    assert not is_ephemeral({"size": "1Gi"})


@pytest.mark.parametrize("volume_id", [KUBELET_ID])
def test_kubelet_ids_are_recognised(volume_id: str) -> None:
    assert is_kubelet_volume_id(volume_id)


@pytest.mark.parametrize("volume_id", ["node-1/vg/csi-" + "ab" * 16, "csi-" + "AB" * 32, KUBELET_ID + "0", ""])
def test_other_ids_are_not_the_kubelets(volume_id: str) -> None:
    assert not is_kubelet_volume_id(volume_id)


@pytest.mark.parametrize("root", ["/var/lib/kubelet", "/var/lib/k0s/kubelet", "/data/kubelet.d"])
def test_the_pod_directory_follows_any_kubelet_root(root: str) -> None:
    assert pod_dir(target(root), {}) == f"{root}/pods/{UID}"
    assert pod_dir(target(root) + "/", {"csi.storage.k8s.io/pod.uid": UID}) == f"{root}/pods/{UID}"


@pytest.mark.parametrize(
    "path",
    [
        "/mnt/scratch",
        f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~csi/scratch",
        f"/var/lib/kube let/pods/{UID}/volumes/kubernetes.io~csi/scratch/mount",  # not a tag-safe character
        f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~csi/scratch/mount/../../x/mount",
        f"/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pv/{UID}",
    ],
)
def test_paths_the_kubelet_does_not_lay_out_are_refused(path: str) -> None:
    with pytest.raises(InvalidArgument):
        pod_dir(path, {})


def test_a_uid_that_contradicts_the_path_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="belongs to pod"):
        pod_dir(target(), {"csi.storage.k8s.io/pod.uid": "11111111-2222-3333-4444-555555555555"})


def test_attributes_become_parameters_and_size_defaults() -> None:
    context = {"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "p", "lvmType": "striping"}
    request = parse_ephemeral(KUBELET_ID, target(), context)
    assert request.size_bytes == DEFAULT_VOLUME_BYTES
    assert request.parameters == {"lvmType": "striping"}
    assert request.params.lvm_type is LvmType.STRIPING
    assert parse_ephemeral(KUBELET_ID, target(), {"size": "64Mi"}).size_bytes == 64 * MiB


@pytest.mark.parametrize(
    ("volume_id", "attributes", "message"),
    [
        ("pvc-1", {}, "not a kubelet inline volume id"),
        (KUBELET_ID, {"size": "-1"}, "size"),
        (KUBELET_ID, {"size": "0"}, "above 0"),
        (KUBELET_ID, {"volumeType": "MountPoint"}, "LVM volume"),
        (KUBELET_ID, {"bps": "fast"}, "bps"),
    ],
)
def test_bad_requests_name_their_problem(volume_id: str, attributes: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_ephemeral(volume_id, target(), attributes)
