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


def _held_size(env: E2EEnvironment, kube: Kube, claim: str) -> int:
    """Run a pod that keeps `claim` mounted and return the size of the file system it sees."""
    pod_name = unique("holder")
    kube.pod(pod_name, claim, ["hold"])
    pod = kube.wait_pod_phase(pod_name, ("Running",))
    pv = kube.bound_pv(claim)
    size = mounted_size_bytes(env, pod.spec.node_name, pod.metadata.uid, pv.metadata.name)
    kube.delete_pod(pod_name)
    return size


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

        for name, source_ref, size in [
            (unique("restore"), from_snapshot, SOURCE_SIZE),
            (unique("clone"), from_claim, SOURCE_SIZE),
            (unique("restore-big"), from_snapshot, LARGER_SIZE),
            (unique("clone-big"), from_claim, LARGER_SIZE),
        ]:
            kube.pvc(name, storage_class, size, data_source=source_ref)
            read = kube.run_to_completion(unique("reader"), name, ["checksum", PAYLOAD, str(WRITE_MIB)])
            assert read == written, f"{name} ({size} from {source_ref['kind']}) does not hold the source's data"
            if size == LARGER_SIZE:
                assert _held_size(e2e_env, kube, name) >= LARGER_MIN_BYTES, f"{name}: file system not grown"
            kube.delete_pvc(name)
