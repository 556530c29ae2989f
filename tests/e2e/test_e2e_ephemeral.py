"""Ephemeral volumes through the kubelet: a CSI inline volume made and removed with its pod by the
node plugin, and a generic ephemeral volume (a claim from the pod's template) through the PVC path."""

from __future__ import annotations

import hashlib
from typing import Any

from e2e_kube import DATA, MIB, Kube, logical_volumes, namespace, pod_volume_dir, unique, volume_lv
from kubernetes import client

from localcsi.testing.e2e_env import POOL_VG, E2EEnvironment
from localcsi.testing.waiting import wait_for

GROUP, VERSION = "localcsi.io", "v1alpha1"
INLINE_SIZE = 64 * MIB
WRITE_MIB = 8


def _pod(kube: Kube, name: str, volume: dict[str, Any], args: list[str]) -> None:
    kube.core.create_namespaced_pod(kube.namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "workload", "image": kube.workload_image(), "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-m", "localcsi.testing.workload", *args],
                "volumeMounts": [{"name": "scratch", "mountPath": DATA}],
            }],
            "volumes": [{"name": "scratch", **volume}],
        },
    })  # fmt: skip


def _kubelet_volume_id(pod_uid: str, volume: str) -> str:
    """The id the kubelet gives an inline volume (and localcsi uses as the CSI name)."""
    return "csi-" + hashlib.sha256(f"{pod_uid}{volume}".encode()).hexdigest()


def _reported_lvs(env: E2EEnvironment, node: str) -> set[str]:
    nls = client.CustomObjectsApi(env.api).get_cluster_custom_object(GROUP, VERSION, "nodelocalstorages", node)
    groups = ((nls.get("status") or {}).get("nodeStorageInfo") or {}).get("volumeGroups") or []
    pool: dict[str, Any] = next((vg for vg in groups if vg["name"] == POOL_VG), {})
    return {lv["name"] for lv in pool.get("logicalVolumes") or []}


def test_an_inline_volume_is_made_for_its_pod_and_removed_with_it(e2e_env: E2EEnvironment) -> None:
    with namespace(e2e_env, "inline") as kube:
        name = unique("inline")
        inline = {"csi": {"driver": "localcsi.io", "volumeAttributes": {"size": "64Mi", "vgName": POOL_VG}}}
        _pod(kube, name, inline, ["write", f"{DATA}/payload", str(WRITE_MIB)])
        pod = kube.wait_pod_phase(name, ("Succeeded",))
        assert len(kube.termination_message(pod)) == 64, "the pod could not write its inline volume"
        node = pod.spec.node_name
        volume_id = _kubelet_volume_id(pod.metadata.uid, "scratch")

        kube.delete_pod(name)
        wait_for(f"inline volume {volume_id} removed", lambda: volume_lv(e2e_env, node, volume_id) is None, 120, 2.0)


def test_an_inline_volume_of_a_running_pod_is_reported_and_held(e2e_env: E2EEnvironment) -> None:
    with namespace(e2e_env, "inline-hold") as kube:
        name = unique("holder")
        inline = {"csi": {"driver": "localcsi.io", "volumeAttributes": {"size": "64Mi", "vgName": POOL_VG}}}
        _pod(kube, name, inline, ["hold"])
        pod = kube.wait_pod_phase(name, ("Running",))
        node = pod.spec.node_name
        volume_id = _kubelet_volume_id(pod.metadata.uid, "scratch")
        found = volume_lv(e2e_env, node, volume_id)
        assert found is not None, f"no LV for inline volume {volume_id} while its pod runs"
        lv_name = found[0]["lv_name"]
        target = f"{pod_volume_dir(pod.metadata.uid, 'kubernetes.io~csi', 'scratch')}/mount"
        fstype = e2e_env.node(node).run(["findmnt", "-n", "-o", "FSTYPE", target]).check().stdout.strip()
        assert fstype == "ext4"
        # The agent reports it like any LV, so the VG's free space and the extender's view stay true.
        wait_for(f"{lv_name} in NodeLocalStorage {node}", lambda: lv_name in _reported_lvs(e2e_env, node), 90, 2.0)

        kube.delete_pod(name)
        wait_for(f"inline volume {volume_id} removed", lambda: volume_lv(e2e_env, node, volume_id) is None, 120, 2.0)


def test_a_generic_ephemeral_volume_lives_and_dies_with_its_pod(e2e_env: E2EEnvironment) -> None:
    with namespace(e2e_env, "generic") as kube:
        name = unique("generic")
        template = {"ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "localcsi-lvm",
            "resources": {"requests": {"storage": "64Mi"}},
        }}}}  # fmt: skip
        _pod(kube, name, template, ["write", f"{DATA}/payload", str(WRITE_MIB)])
        pod = kube.wait_pod_phase(name, ("Succeeded",))
        assert len(kube.termination_message(pod)) == 64
        claim = f"{name}-scratch"
        pvc = kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace)
        assert [owner.uid for owner in pvc.metadata.owner_references] == [pod.metadata.uid]
        pv = kube.bound_pv(claim)
        node = pod.spec.node_name
        assert volume_lv(e2e_env, node, pv.metadata.name) is not None

        kube.delete_pod(name)  # the garbage collector deletes the claim, the provisioner the volume
        wait_for(
            f"LV of {pv.metadata.name} removed with its pod",
            lambda: volume_lv(e2e_env, node, pv.metadata.name) is None,
            180,
            2.0,
            lambda: "\n".join(row["lv_name"] for row in logical_volumes(e2e_env, node)),
        )
