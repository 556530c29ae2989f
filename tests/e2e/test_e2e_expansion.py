"""Online expansion: the claim grows while a pod holds it, and the pod's file system follows."""

from __future__ import annotations

import pytest
from e2e_kube import MIB, mounted_size_bytes, namespace, unique

from localcsi.testing.e2e_env import E2EEnvironment
from localcsi.testing.waiting import wait_for

GROWN_MIN_BYTES = 440 * MIB


@pytest.mark.parametrize("storage_class", ["localcsi-lvm", "localcsi-lvm-xfs"], ids=["ext4", "xfs"])
def test_claim_grows_under_a_running_pod(e2e_env: E2EEnvironment, storage_class: str) -> None:
    with namespace(e2e_env, "grow") as kube:
        claim = unique("data")
        kube.pvc(claim, storage_class, "300Mi")
        pod_name = unique("holder")
        kube.pod(pod_name, claim, ["hold"])
        pod = kube.wait_pod_phase(pod_name, ("Running",))
        pv_name = kube.bound_pv(claim).metadata.name
        before = mounted_size_bytes(e2e_env, pod.spec.node_name, pod.metadata.uid, pv_name)
        assert before < 300 * MIB

        kube.core.patch_namespaced_persistent_volume_claim(
            claim, kube.namespace, {"spec": {"resources": {"requests": {"storage": "512Mi"}}}}
        )

        def grown() -> int | None:
            size = mounted_size_bytes(e2e_env, pod.spec.node_name, pod.metadata.uid, pv_name)
            return size if size >= GROWN_MIN_BYTES else None

        wait_for(f"the file system of {claim} to grow to 512Mi", grown, 300, 2.0, lambda: kube.events(claim))
        wait_for(
            f"PVC {claim} status capacity 512Mi",
            lambda: (
                (kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace).status.capacity or {}).get(
                    "storage"
                )
                == "512Mi"
            ),
            120,
            1.0,
        )
        assert kube.core.read_namespaced_pod(pod_name, kube.namespace).status.phase == "Running"
        kube.delete_pod(pod_name)
        kube.delete_pvc(claim)
