"""The node's storage as the release made it: the VG from the init config, capacity reported alike in
NodeLocalStorage and CSIStorageCapacity, and a pod that fits nowhere left Pending with the reason."""

from __future__ import annotations

from functools import partial
from typing import Any

from e2e_kube import namespace, unique
from kubernetes import client
from kubernetes.utils import parse_quantity

from localcsi import TOPOLOGY_KEY
from localcsi.testing.e2e_env import POOL_VG, E2EEnvironment
from localcsi.testing.waiting import wait_for

GROUP, VERSION = "localcsi.io", "v1alpha1"


def _pool_status(env: E2EEnvironment, node: str) -> dict[str, Any] | None:
    nls = client.CustomObjectsApi(env.api).get_cluster_custom_object(GROUP, VERSION, "nodelocalstorages", node)
    groups = ((nls.get("status") or {}).get("nodeStorageInfo") or {}).get("volumeGroups") or []
    return next((vg for vg in groups if vg["name"] == POOL_VG), None)


def test_the_agent_made_the_pool_vg_from_the_init_config(e2e_env: E2EEnvironment) -> None:
    for node in e2e_env.node_names:
        status = wait_for(f"{POOL_VG} in NodeLocalStorage {node}", partial(_pool_status, e2e_env, node), 180, 2.0)
        vgs = e2e_env.node(node).run(["vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_name,vg_size"])
        name, size = vgs.check().stdout.split()
        assert name == POOL_VG
        assert int(status["total"]) == int(size)


def test_csistoragecapacity_agrees_with_nodelocalstorage(e2e_env: E2EEnvironment) -> None:
    storage = client.StorageV1Api(e2e_env.api)
    for node in e2e_env.node_names:

        def agree(node: str = node) -> bool:
            status = _pool_status(e2e_env, node)
            for capacity in storage.list_csi_storage_capacity_for_all_namespaces().items:
                labels = (capacity.node_topology.match_labels or {}) if capacity.node_topology else {}
                if capacity.storage_class_name == "localcsi-lvm" and labels.get(TOPOLOGY_KEY) == node:
                    return status is not None and int(parse_quantity(capacity.capacity)) == int(status["allocatable"])
            return False

        wait_for(f"CSIStorageCapacity of localcsi-lvm on {node} equal to the VG's allocatable", agree, 240, 5.0)


def test_a_pod_whose_volume_fits_nowhere_stays_pending_with_the_reason(e2e_env: E2EEnvironment) -> None:
    with namespace(e2e_env, "full") as kube:
        claim = unique("huge")
        kube.pvc(claim, "localcsi-lvm", "500Gi")
        pod = unique("pending")
        kube.pod(pod, claim, ["hold"])

        # The extender names the claim; without it, kube-scheduler's volume binding compares each
        # claim with CSIStorageCapacity.
        expected = "localcsi" if e2e_env.scheduler_has_extender else "did not have enough free storage"

        def failed_scheduling() -> str | None:
            events = kube.core.list_namespaced_event(kube.namespace, field_selector=f"involvedObject.name={pod}")
            messages = [e.message for e in events.items if e.reason == "FailedScheduling"]
            return next((m for m in messages if expected in m), None)

        message = wait_for(f"FailedScheduling for {pod} saying {expected!r}", failed_scheduling, 120, 2.0)
        if e2e_env.scheduler_has_extender:
            assert claim in message and "room" in message, message
        assert kube.core.read_namespaced_pod(pod, kube.namespace).status.phase == "Pending"
        status = kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace).status
        assert status.phase == "Pending", "no volume may be made for a pod that cannot be placed"
