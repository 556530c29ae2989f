"""Kubernetes objects as the apiserver sends them (JSON keys), for the extender's tests."""

from __future__ import annotations

from typing import Any

from localcsi import DRIVER_NAME, TOPOLOGY_KEY
from localcsi.core.names import volume_lv_name
from localcsi.core.sizes import GiB
from localcsi.extender.objects import SELECTED_NODE_ANNOTATION

Obj = dict[str, Any]
NAMESPACE = "default"


def nls(node: str, *vgs: tuple[str, float], lvs: tuple[str, ...] = (), devices: tuple[Obj, ...] = ()) -> Obj:
    """A NodeLocalStorage whose agent reports ``vgs`` as (name, allocatable GiB), all filtered in."""
    groups = [
        {
            "name": name,
            "total": 100 * GiB,
            "allocatable": int(free * GiB),
            "available": int(free * GiB),
            "condition": "DiskReady",
            "logicalVolumes": [{"name": lv, "vgname": name, "total": GiB} for lv in lvs],
        }
        for name, free in vgs
    ]
    return {
        "apiVersion": "localcsi.io/v1alpha1",
        "kind": "NodeLocalStorage",
        "metadata": {"name": node},
        "spec": {"nodeName": node},
        "status": {
            "nodeStorageInfo": {"volumeGroups": groups, "deviceInfo": list(devices)},
            "filteredStorageInfo": {
                "volumeGroups": [name for name, _ in vgs],
                "devices": [d["name"] for d in devices],
            },
        },
    }


def storage_class(name: str = "local", provisioner: str = DRIVER_NAME, **parameters: str) -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "parameters": parameters,
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def pvc(
    name: str,
    size: str = "1Gi",
    storage_class_name: str | None = "local",
    *,
    uid: str | None = None,
    selected_node: str | None = None,
    volume_name: str | None = None,
    data_source: Obj | None = None,
) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class_name is not None:
        spec["storageClassName"] = storage_class_name
    if volume_name:
        spec["volumeName"] = volume_name
    if data_source:
        spec["dataSource"] = data_source
    metadata: Obj = {"name": name, "namespace": NAMESPACE, "uid": uid or f"uid-{name}"}
    if selected_node:
        metadata["annotations"] = {SELECTED_NODE_ANNOTATION: selected_node}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Bound" if volume_name else "Pending"},
    }


def pv_for(claim: Obj, node: str, vg: str = "vg0", size: str | None = None) -> Obj:
    """The PV the external-provisioner would create for ``claim`` on ``node``."""
    name = f"pvc-{claim['metadata']['uid']}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size or claim["spec"]["resources"]["requests"]["storage"]},
            "csi": {"driver": DRIVER_NAME, "volumeHandle": f"{node}/{vg}/{volume_lv_name(name)}"},
            "claimRef": {"namespace": claim["metadata"]["namespace"], "name": claim["metadata"]["name"]},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }


def pod(name: str, *claims: str, uid: str | None = None, node: str | None = None, volumes: tuple[Obj, ...] = ()) -> Obj:
    spec_volumes = [{"name": f"v-{claim}", "persistentVolumeClaim": {"claimName": claim}} for claim in claims]
    spec_volumes += list(volumes)
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}], "volumes": spec_volumes}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid or f"uid-{name}"},
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending"},
    }


def inline(name: str, **attributes: str) -> Obj:
    return {"name": name, "csi": {"driver": DRIVER_NAME, "volumeAttributes": attributes}}


def ephemeral(name: str, size: str = "1Gi", storage_class_name: str = "local") -> Obj:
    return {
        "name": name,
        "ephemeral": {
            "volumeClaimTemplate": {
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class_name,
                    "resources": {"requests": {"storage": size}},
                }
            }
        },
    }
