"""VolumeSnapshots through the CSI snapshotter, restores and clones through the provisioner, for thick
and thin volumes: the data comes back bit for bit, and a larger restore or clone is usable in full."""

from __future__ import annotations

import pytest
from e2e_kube import DATA, MIB, Kube, mounted_size_bytes, namespace, unique

from localcsi.testing.e2e_env import E2EEnvironment

SOURCE_SIZE = "128Mi"
LARGER_SIZE = "512Mi"
WRITE_MIB = 8
PAYLOAD = f"{DATA}/payload"
# ext4 keeps a few percent for its journal and metadata; a file system left at the source's size
# would be under 128 MiB.
LARGER_MIN_BYTES = 440 * MIB


def _held_sizes(env: E2EEnvironment, kube: Kube, claims: list[str]) -> dict[str, int]:
    """Run a pod per claim that keeps it mounted, all at once, and return the size of the file system
    each sees."""
    holders = {claim: unique("holder") for claim in claims}
    for claim, holder in holders.items():
        kube.pod(holder, claim, ["hold"])
    sizes = {}
    for claim, holder in holders.items():
        pod = kube.wait_pod_phase(holder, ("Running",))
        pv = kube.bound_pv(claim)
        sizes[claim] = mounted_size_bytes(env, pod.spec.node_name, pod.metadata.uid, pv.metadata.name)
    for holder in holders.values():
        kube.delete_pod(holder)
    return sizes


@pytest.mark.parametrize("storage_class", ["localcsi-lvm", "localcsi-lvm-thin"], ids=["thick", "thin"])
def test_snapshot_restore_and_clone_keep_the_data(e2e_env: E2EEnvironment, storage_class: str) -> None:
    with namespace(e2e_env, "snap") as kube:
        source = unique("source")
        kube.pvc(source, storage_class, SOURCE_SIZE)
        written = kube.run_to_completion(unique("writer"), source, ["write", PAYLOAD, str(WRITE_MIB)])

        snapshot = unique("snap")
        kube.snapshot(snapshot, source)
        kube.wait_snapshot_ready(snapshot)
        from_snapshot = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}
        from_claim = {"kind": "PersistentVolumeClaim", "name": source}

        # The four claims and their readers go in together: the provisioner, the kubelet and the node
        # serve them side by side, as they would a StatefulSet's.
        targets = [
            (unique("restore"), from_snapshot, SOURCE_SIZE),
            (unique("clone"), from_claim, SOURCE_SIZE),
            (unique("restore-big"), from_snapshot, LARGER_SIZE),
            (unique("clone-big"), from_claim, LARGER_SIZE),
        ]
        for name, source_ref, size in targets:
            kube.pvc(name, storage_class, size, data_source=source_ref)
        runs = [(unique("reader"), name, ["checksum", PAYLOAD, str(WRITE_MIB)], False) for name, _, _ in targets]
        for (name, source_ref, size), read in zip(targets, kube.run_side_by_side(runs), strict=True):
            assert read == written, f"{name} ({size} from {source_ref['kind']}) does not hold the source's data"
        larger = [name for name, _, size in targets if size == LARGER_SIZE]
        for name, held in _held_sizes(e2e_env, kube, larger).items():
            assert held >= LARGER_MIN_BYTES, f"{name}: file system not grown ({held} bytes)"
        kube.delete_pvcs([name for name, _, _ in targets])  # restores and clones delete while their source stays
