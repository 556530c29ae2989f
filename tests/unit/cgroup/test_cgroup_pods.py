"""Which pod a kubelet target path belongs to, and where the kubelet puts that pod's cgroup."""

import pytest

from localcsi.cgroup.pods import (
    QOS_CLASSES,
    candidate_dirs,
    cgroupfs_name,
    is_pod_dir_name,
    is_pod_uid,
    pod_uid,
    systemd_name,
)

pytestmark = pytest.mark.unit

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ESCAPED = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0"
FS_TARGET = f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~csi/pvc-1/mount"
BLOCK_TARGET = f"/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-1/{UID}"


def test_a_filesystem_target_names_its_pod() -> None:
    assert pod_uid(FS_TARGET) == UID
    assert pod_uid(FS_TARGET + "/") == UID


def test_a_block_target_names_its_pod() -> None:
    assert pod_uid(BLOCK_TARGET) == UID


@pytest.mark.parametrize("root", ["/data/kubelet", "/var/lib/k0s/kubelet", "/opt/k8s/var/lib/kubelet"])
def test_a_non_default_kubelet_root_dir_works(root: str) -> None:
    assert pod_uid(f"{root}/pods/{UID}/volumes/kubernetes.io~csi/pvc-1/mount") == UID
    assert pod_uid(f"{root}/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-1/{UID}") == UID


@pytest.mark.parametrize(
    "target",
    [
        # the uid is not a UUID
        "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pvc-1/mount",
        "/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-1/p1",
        FS_TARGET.replace(UID, UID.upper()),
        FS_TARGET.replace(UID, UID[:-1]),
        FS_TARGET.replace(UID, UID + "0"),
        BLOCK_TARGET.replace(UID, UID.replace("-", "")),
        # more path after the mount point or the block node
        FS_TARGET + "/sub",
        FS_TARGET + "/..",
        FS_TARGET + "/../../../../../../etc",
        BLOCK_TARGET + "/x",
        BLOCK_TARGET + "/..",
        # the uid elsewhere than where the kubelet puts it
        f"/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/{UID}/pvc-1",
        f"/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/staging/pvc-1/{UID}",
        f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~empty-dir/cache",
        f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~csi/pvc-1/globalmount",
        f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~csi/mount",
        f"/var/lib/kubelet/pods/x/{UID}/volumes/kubernetes.io~csi/pvc-1/mount",
        f"/var/lib/kubelet/pods/{UID}",
        f"/mnt/{UID}",
        "",
        "/",
    ],
)
def test_paths_the_kubelet_did_not_lay_out_name_no_pod(target: str) -> None:
    assert pod_uid(target) is None


def test_cgroupfs_candidates_cover_every_qos_class() -> None:
    dirs = candidate_dirs(UID)
    assert f"kubepods/pod{UID}" in dirs  # Guaranteed: right under kubepods
    assert f"kubepods/burstable/pod{UID}" in dirs
    assert f"kubepods/besteffort/pod{UID}" in dirs


def test_systemd_candidates_cover_every_qos_class_with_escaped_uid() -> None:
    dirs = candidate_dirs(UID)
    assert f"kubepods.slice/kubepods-pod{ESCAPED}.slice" in dirs  # Guaranteed: right under kubepods.slice
    assert f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESCAPED}.slice" in dirs
    assert f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{ESCAPED}.slice" in dirs


def test_candidates_are_exactly_the_six_layouts_and_relative() -> None:
    dirs = candidate_dirs(UID)
    assert len(dirs) == 6 == len(set(dirs))
    assert not any(path.startswith("/") or "//" in path or path.endswith("/") for path in dirs)
    assert all(path.split("/")[0] in ("kubepods", "kubepods.slice") for path in dirs)


def test_names_in_either_driver() -> None:
    assert cgroupfs_name(UID) == f"pod{UID}"
    assert systemd_name(UID, "") == f"kubepods-pod{ESCAPED}.slice"
    assert systemd_name(UID, "burstable") == f"kubepods-burstable-pod{ESCAPED}.slice"
    assert QOS_CLASSES == ("", "burstable", "besteffort")


@pytest.mark.parametrize(
    "name",
    [
        f"pod{UID}",
        f"kubepods-pod{ESCAPED}.slice",
        f"kubepods-burstable-pod{ESCAPED}.slice",
        f"kubepods-besteffort-pod{ESCAPED}.slice",
    ],
)
def test_the_pods_own_directory_names(name: str) -> None:
    assert is_pod_dir_name(name, UID)


@pytest.mark.parametrize(
    "name",
    [
        UID,
        f"pod{ESCAPED}",
        f"kubepods-pod{UID}.slice",  # systemd escapes '-' to '_'
        f"kubepods-guaranteed-pod{ESCAPED}.slice",
        f"kubepods-burstable-pod{ESCAPED}",
        f"pod{UID}.slice",
        f"pod{UID[:-1]}1",
        "kubepods",
        "kubepods-burstable.slice",
        f"pod{UID}x",
    ],
)
def test_other_directory_names_are_not_the_pods(name: str) -> None:
    assert not is_pod_dir_name(name, UID)


@pytest.mark.parametrize(
    "target",
    [
        "/var/lib/kubelet/pods/0b6f3c1e-8f7a-4f4e-9f5e-2a6d1c3b4e5f/volumes/kubernetes.io~csi/../mount",
        "/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/../0b6f3c1e-8f7a-4f4e-9f5e-2a6d1c3b4e5f",
        "var/lib/kubelet/pods/0b6f3c1e-8f7a-4f4e-9f5e-2a6d1c3b4e5f/volumes/kubernetes.io~csi/pv/mount",
        "/x/../pods/0b6f3c1e-8f7a-4f4e-9f5e-2a6d1c3b4e5f/volumes/kubernetes.io~csi/pv/mount",
    ],
)
def test_dot_components_and_relative_targets_name_no_pod(target: str) -> None:
    assert pod_uid(target) is None


def test_is_pod_uid_takes_only_a_uuid() -> None:
    assert is_pod_uid("0b6f3c1e-8f7a-4f4e-9f5e-2a6d1c3b4e5f")
    assert not is_pod_uid("../../etc")
    assert not is_pod_uid("0b6f3c1e-8f7a-4f4e-9f5e-2a6d1c3b4e5f/..")
