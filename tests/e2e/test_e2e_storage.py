"""The node's storage as the release made it: the VG from the init config, capacity reported alike in
NodeLocalStorage and CSIStorageCapacity, and a pod that fits nowhere left Pending with the reason."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from e2e_kube import MIB, namespace, unique
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


def test_a_claim_larger_than_any_node_stays_pending(e2e_env: E2EEnvironment) -> None:
    """kube-scheduler's volume binding compares the claim with CSIStorageCapacity: no node is left."""
    with namespace(e2e_env, "full") as kube:
        claim, pod = unique("huge"), unique("pending")
        kube.pvc(claim, "localcsi-lvm", "500Gi")
        kube.pod(pod, claim, ["hold"])
        kube.failed_scheduling(pod, "did not have enough free storage")
        assert kube.core.read_namespaced_pod(pod, kube.namespace).status.phase == "Pending"
        status = kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace).status
        assert status.phase == "Pending", "no volume may be made for a pod that cannot be placed"


def test_claims_that_fit_alone_but_not_together_stay_pending_with_the_extenders_reason(
    e2e_env: E2EEnvironment,
) -> None:
    """Each claim passes CSIStorageCapacity on its own; only the extender sees that together they do not
    fit (open-local #158 placed such pods and over-committed)."""
    if not e2e_env.scheduler_has_extender:
        pytest.skip("this environment's kube-scheduler has no extender (kind keeps its own configuration)")
    node = e2e_env.node_names[0]
    status = _pool_status(e2e_env, node)
    assert status is not None
    each = f"{int(status['allocatable']) * 6 // 10 // MIB}Mi"
    with namespace(e2e_env, "pair") as kube:
        first, second, pod = unique("first"), unique("second"), unique("pending")
        kube.pvc(first, "localcsi-lvm", each)
        kube.pvc(second, "localcsi-lvm", each)
        kube.pod_with_claims(pod, [first, second], ["hold"])
        message = kube.failed_scheduling(pod, "localcsi")
        assert "room" in message and first in message and second in message, message
        assert kube.core.read_namespaced_pod(pod, kube.namespace).status.phase == "Pending"
        for claim in (first, second):
            phase = kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace).status.phase
            assert phase == "Pending", f"{claim}: no volume may be made for a pod that cannot be placed"
