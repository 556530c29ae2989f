"""Online expansion: the claim grows while a pod holds it, and the pod's file system follows; an ext4 and
an xfs claim side by side (one run of pod starts and resizes on the node instead of two)."""

from __future__ import annotations

from functools import partial

from e2e_kube import MIB, mounted_size_bytes, namespace, unique

from localcsi.testing.e2e_env import E2EEnvironment
from localcsi.testing.waiting import wait_for

GROWN_MIN_BYTES = 440 * MIB
STORAGE_CLASSES = {"ext4": "localcsi-lvm", "xfs": "localcsi-lvm-xfs"}


def test_claim_grows_under_a_running_pod(e2e_env: E2EEnvironment) -> None:
    with namespace(e2e_env, "grow") as kube:
        claims = {fs_type: unique(f"data-{fs_type}") for fs_type in STORAGE_CLASSES}
        holders = {fs_type: unique(f"holder-{fs_type}") for fs_type in STORAGE_CLASSES}
        for fs_type, claim in claims.items():
            kube.pvc(claim, STORAGE_CLASSES[fs_type], "300Mi")
            kube.pod(holders[fs_type], claim, ["hold"])
        held = {}
        for fs_type, claim in claims.items():
            pod = kube.wait_pod_phase(holders[fs_type], ("Running",))
            pv_name = kube.bound_pv(claim).metadata.name
            held[fs_type] = (pod.spec.node_name, pod.metadata.uid, pv_name)
            assert mounted_size_bytes(e2e_env, *held[fs_type]) < 300 * MIB, fs_type

        for claim in claims.values():
            kube.core.patch_namespaced_persistent_volume_claim(
                claim, kube.namespace, {"spec": {"resources": {"requests": {"storage": "512Mi"}}}}
            )

        for fs_type, claim in claims.items():

            def grown(fs_type: str = fs_type) -> int | None:
                size = mounted_size_bytes(e2e_env, *held[fs_type])
                return size if size >= GROWN_MIN_BYTES else None

            def capacity(claim: str = claim) -> object:
                status = kube.core.read_namespaced_persistent_volume_claim(claim, kube.namespace).status
                return (status.capacity or {}).get("storage")

            events = partial(kube.events, claim)
            wait_for(f"the {fs_type} file system of {claim} to grow to 512Mi", grown, 300, 2.0, events)
            wait_for(f"PVC {claim} status capacity 512Mi", lambda: capacity() == "512Mi", 120, 1.0)
            assert kube.core.read_namespaced_pod(holders[fs_type], kube.namespace).status.phase == "Running"
        for holder in holders.values():
            kube.delete_pod(holder)
        kube.delete_pvcs(list(claims.values()))
