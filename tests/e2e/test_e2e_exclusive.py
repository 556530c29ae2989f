"""Device and MountPoint volumes through the kubelet, as the Helm release serves them: a StatefulSet whose
replicas each get a whole SSD, a pod on the mount point the init config made, and a pod asking for more
disks than the node has, left Pending with the extender's reason.

The environment offers rotating and non-rotating disks to Device volumes (``device_disks``) and a disk the
init config turns into MOUNT_POINT; the chart shows MOUNT_POINT_DIR to the node pods (node.mountPointDirs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_kube import DATA, Kube, namespace, pv_node, unique, volume_lv
from kubernetes import client

from localcsi.testing.e2e_env import MOUNT_POINT, E2EEnvironment
from localcsi.testing.waiting import wait_for

GROUP, VERSION = "localcsi.io", "v1alpha1"
CLAIM = "512Mi"  # fits a 1 GiB disk once LVM's metadata is taken off
WRITE_MIB = 8
REPORT_TIMEOUT = 180


@pytest.fixture(scope="module")
def node(e2e_env: E2EEnvironment) -> str:
    if not e2e_env.device_disks or e2e_env.mount_point_disk is None:
        pytest.skip("this environment offers no disks to Device and MountPoint volumes")
    name = e2e_env.node_names[0]
    wait_for(f"{name}'s Device disks and {MOUNT_POINT} in its NodeLocalStorage", lambda: _reported(e2e_env, name),
             REPORT_TIMEOUT, 2.0, lambda: json.dumps(_storage_info(e2e_env, name), indent=1))  # fmt: skip
    return name


def _storage_info(env: E2EEnvironment, node: str) -> dict[str, Any]:
    nls = client.CustomObjectsApi(env.api).get_cluster_custom_object(GROUP, VERSION, "nodelocalstorages", node)
    info: dict[str, Any] = (nls.get("status") or {}).get("nodeStorageInfo") or {}
    return info


def _reported(env: E2EEnvironment, node: str) -> bool:
    """Every Device disk reported blank with the mediaType the environment gave it, and the mount point."""
    info = _storage_info(env, node)
    media = {d["name"]: d["mediaType"] for d in info.get("deviceInfo") or []}
    mounts = {m["name"]: m for m in info.get("mountPoints") or []}
    disks_as_given = all(media.get(disk) == kind for disk, kind in env.device_disks.items())
    return disks_as_given and mounts.get(MOUNT_POINT, {}).get("device") == env.mount_point_disk


@pytest.fixture
def storage_class(e2e_env: E2EEnvironment) -> Iterator[Any]:
    """Makes StorageClasses for one test and deletes them afterwards."""
    storage = client.StorageV1Api(e2e_env.api)
    made: list[str] = []

    def make(prefix: str, parameters: dict[str, str]) -> str:
        name = unique(prefix)
        storage.create_storage_class({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": "localcsi.io", "volumeBindingMode": "WaitForFirstConsumer", "parameters": parameters,
        })  # fmt: skip
        made.append(name)
        return name

    yield make
    for name in made:
        storage.delete_storage_class(name)


def _disk_of_vg(env: E2EEnvironment, node: str, vg: str) -> str:
    report = env.node(node).run(["pvs", "--reportformat", "json", "-o", "pv_name,vg_name"]).check().stdout
    disks: list[str] = [row["pv_name"] for row in json.loads(report)["report"][0]["pv"] if row["vg_name"] == vg]
    assert len(disks) == 1, f"VG {vg} of a Device volume should sit on one whole disk: {disks}"
    return disks[0]


def _signature(env: E2EEnvironment, node: str, disk: str) -> str:
    """What blkid finds on the disk ('' for nothing: blkid -p exits 2)."""
    result = env.node(node).run(["blkid", "-p", "-o", "export", disk])
    assert result.rc in (0, 2), result.stderr
    return result.stdout.strip()


def _statefulset(kube: Kube, name: str, storage_class: str) -> None:
    container = {"image": kube.workload_image(), "imagePullPolicy": "IfNotPresent",
                 "volumeMounts": [{"name": "data", "mountPath": DATA}]}  # fmt: skip
    client.AppsV1Api(kube.env.api).create_namespaced_stateful_set(kube.namespace, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {
            "replicas": 2, "podManagementPolicy": "Parallel", "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "initContainers": [{"name": "write", **container, "command": [
                        "python3", "-m", "localcsi.testing.workload", "write", f"{DATA}/payload", str(WRITE_MIB)]}],
                    "containers": [{"name": "hold", **container, "command": [
                        "python3", "-m", "localcsi.testing.workload", "hold"]}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                "resources": {"requests": {"storage": CLAIM}},
            }}],
        },
    })  # fmt: skip


def _written(pod: client.V1Pod) -> str:
    for status in pod.status.init_container_statuses or []:
        if status.state.terminated is not None:
            return str(status.state.terminated.message or "").strip()
    return ""


def test_a_statefulset_gets_a_whole_ssd_per_replica(e2e_env: E2EEnvironment, node: str, storage_class: Any) -> None:
    ssds = {disk for disk, kind in e2e_env.device_disks.items() if kind == "ssd"}
    assert len(ssds) == 2, f"the environment should offer two SSDs: {e2e_env.device_disks}"
    ssd_class = storage_class("device-ssd", {"volumeType": "Device", "mediaType": "ssd",
                                             "csi.storage.k8s.io/fstype": "ext4"})  # fmt: skip
    with namespace(e2e_env, "device") as kube:
        name = unique("ssd")
        _statefulset(kube, name, ssd_class)
        pods = [kube.wait_pod_phase(f"{name}-{index}", ("Running",)) for index in range(2)]
        assert all(len(_written(pod)) == 64 for pod in pods), "a replica could not write its disk"

        disks = {}
        for index in range(2):
            pv = kube.bound_pv(f"data-{name}-{index}")
            assert pv_node(pv) == node
            found = volume_lv(e2e_env, node, pv.metadata.name)
            assert found is not None, f"no LV carries {pv.metadata.name}'s name"
            disks[pv.metadata.name] = _disk_of_vg(e2e_env, node, found[0]["vg_name"])
        assert set(disks.values()) == ssds, f"each replica should hold one of the SSDs {sorted(ssds)}: {disks}"

        client.AppsV1Api(e2e_env.api).delete_namespaced_stateful_set(name, kube.namespace)
        wait_for(f"{name}'s pods gone", lambda: not kube.core.list_namespaced_pod(kube.namespace).items, 120, 1.0)
        for index in range(2):
            kube.delete_pvc(f"data-{name}-{index}")
    for disk in sorted(ssds):
        assert _signature(e2e_env, node, disk) == "", f"{disk} should be blank after its volume's delete"


def test_a_pod_asking_for_more_disks_than_the_node_has_stays_pending(
    e2e_env: E2EEnvironment, node: str, storage_class: Any
) -> None:
    """Each claim fits a disk, so CSIStorageCapacity lets each pass; the extender counts the node's free
    rotating disks and finds one short."""
    if not e2e_env.scheduler_has_extender:
        pytest.skip("this environment's kube-scheduler has no extender (kind keeps its own configuration)")
    hdds = [disk for disk, kind in e2e_env.device_disks.items() if kind == "hdd"]
    hdd_class = storage_class("device-hdd", {"volumeType": "Device", "mediaType": "hdd"})
    with namespace(e2e_env, "devices") as kube:
        claims = [unique("disk") for _ in range(len(hdds) + 1)]
        for claim in claims:
            kube.pvc(claim, hdd_class, CLAIM)
        pod = unique("pending")
        kube.pod_with_claims(pod, claims, ["hold"])

        message = kube.failed_scheduling(pod, "localcsi")
        assert "no free hdd disk" in message and f"({len(claims)} exclusive volumes in all)" in message, message
        assert kube.core.read_namespaced_pod(pod, kube.namespace).status.phase == "Pending"
        for claim in claims:
            phase = kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace).status.phase
            assert phase == "Pending", f"{claim}: no disk may be taken for a pod that cannot be placed"
    for disk in hdds:
        assert _signature(e2e_env, node, disk) == "", f"{disk} was touched for a pod that was never placed"


def test_a_pod_on_the_mount_point_the_init_config_made(e2e_env: E2EEnvironment, node: str, storage_class: Any) -> None:
    access = e2e_env.node(node)
    mounted = access.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", MOUNT_POINT]).check().stdout.split()
    assert mounted == [e2e_env.mount_point_disk, "ext4"], f"the agent's mount of {MOUNT_POINT}: {mounted}"
    mount_point_class = storage_class("mountpoint", {"volumeType": "MountPoint"})
    with namespace(e2e_env, "mountpoint") as kube:
        claim, writer = unique("mp"), unique("writer")
        kube.pvc(claim, mount_point_class, "256Mi")
        kube.pod(writer, claim, ["write", f"{DATA}/payload", str(WRITE_MIB)])
        digest = kube.termination_message(kube.wait_pod_phase(writer, ("Succeeded",)))
        assert len(digest) == 64, "the pod could not write its MountPoint volume"
        pv = kube.bound_pv(claim)
        assert pv_node(pv) == node
        files = access.run(["find", MOUNT_POINT, "-name", "payload", "-type", "f"]).check().stdout.split()
        assert len(files) == 1, f"the pod's file should be on {MOUNT_POINT}: {files}"
        on_disk = access.run(["sha256sum", files[0]]).check().stdout.split()[0]
        assert on_disk == digest, "the bytes on the mount point are not the ones the pod wrote"

        kube.delete_pod(writer)
        kube.delete_pvc(claim)
    left = access.run(["find", MOUNT_POINT, "-mindepth", "1", "-maxdepth", "1"]).check().stdout.split()
    assert left == [f"{MOUNT_POINT}/lost+found"], f"the delete should leave the mount point empty: {left}"
    still = access.run(["findmnt", "-n", "-o", "SOURCE", MOUNT_POINT]).check().stdout.strip()
    assert still == e2e_env.mount_point_disk, "the delete must never unmount the mount point itself"
