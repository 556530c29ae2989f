"""Node objects with a NodeLocalStorage whose status looks as an agent would report it, for
scheduler tests and benchmarks that need many nodes but no disks (there is no kubelet or agent)."""

from __future__ import annotations

from typing import Any

from localcsi.k8s.resources import NODE_LOCAL_STORAGE, CustomResources
from localcsi.testing.cluster import KubeCluster

GIB = 1024**3


def volume_group(name: str, total: int, allocatable: int | None = None) -> dict[str, Any]:
    allocatable = total if allocatable is None else allocatable
    return {
        "name": name,
        "physicalVolumes": ["/dev/vdb"],
        "logicalVolumes": [],
        "total": total,
        "available": allocatable,
        "allocatable": allocatable,
        "reserved": 0,
        "condition": "DiskReady",
    }


def storage_status(vgs: dict[str, int]) -> dict[str, Any]:
    groups = [volume_group(name, size) for name, size in vgs.items()]
    return {
        "nodeStorageInfo": {"deviceInfo": [], "volumeGroups": groups, "mountPoints": []},
        "filteredStorageInfo": {
            "volumeGroups": list(vgs),
            "devices": [],
            "mountPoints": [],
            "updateStatusInfo": {"lastUpdateTime": "2026-01-01T00:00:00Z", "updateStatus": "accepted"},
        },
        "summary": {"readyVolumeGroups": len(vgs), "total": sum(vgs.values()), "allocatable": sum(vgs.values())},
    }


def add_storage_node(
    cluster: KubeCluster, name: str, vgs: dict[str, int], labels: dict[str, str] | None = None
) -> None:
    """A schedulable Node and its NodeLocalStorage reporting `vgs` (name -> bytes), all allocatable."""
    cluster.add_node(name, labels)
    resources = CustomResources(cluster.kube_api(), NODE_LOCAL_STORAGE)
    if resources.get(name) is None:
        resources.create(
            {"metadata": {"name": name}, "spec": {"nodeName": name, "listConfig": {"vgs": {"include": ["^localcsi-"]}}}}
        )
    resources.patch_status(name, storage_status(vgs))
