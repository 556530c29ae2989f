"""Pods, PVCs, StorageClasses and AdmissionReviews as the apiserver sends them, and a fake lookup."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcsi import DRIVER_NAME
from localcsi.webhook.usage import LookupFailed, choose_default_class

OURS = "localcsi-lvm"
OTHER = "nfs"


def storage_class(
    name: str, provisioner: str = DRIVER_NAME, default: bool = False, created: str = ""
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created or "2024-01-01T00:00:00Z"}
    if default:
        metadata["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"metadata": metadata, "provisioner": provisioner}


def claim(name: str, class_name: str | None, namespace: str = "shop") -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def pvc_volume(name: str, claim_name: str) -> dict[str, Any]:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim_name}}


def ephemeral_volume(name: str, class_name: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    return {"name": name, "ephemeral": {"volumeClaimTemplate": {"spec": spec}}}


def inline_volume(name: str, driver: str = DRIVER_NAME) -> dict[str, Any]:
    return {"name": name, "csi": {"driver": driver, "volumeAttributes": {"size": "1Gi"}}}


def pod(*volumes: dict[str, Any], resources: dict[str, Any] | None = None, name: str = "app") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if resources is not None:
        container["resources"] = resources
    spec = {"containers": [container, {"name": "sidecar", "image": "busybox"}], "volumes": list(volumes)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def review(
    obj: Any, operation: str = "CREATE", kind: str = "Pod", uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "name": "app",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


def review_body(obj: Any, **kwargs: Any) -> bytes:
    return json.dumps(review(obj, **kwargs)).encode()


@dataclass
class FakeLookup:
    claims: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    classes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    failing: bool = False
    calls: list[str] = field(default_factory=list)

    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.calls.append(f"claim {namespace}/{name}")
        if self.failing:
            raise LookupFailed("503 Service Unavailable")
        return self.claims.get((namespace, name))

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        self.calls.append(f"class {name}")
        return self.classes.get(name)

    def default_class(self) -> Mapping[str, Any] | None:
        return choose_default_class(self.classes.values())


def lookup(*claims: dict[str, Any], default: str | None = None) -> FakeLookup:
    classes: dict[str, Mapping[str, Any]] = {
        OURS: storage_class(OURS, default=default == OURS),
        OTHER: storage_class(OTHER, "nfs.example.com", default=default == OTHER),
    }
    return FakeLookup({(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in claims}, classes)


def apply_patch(document: Any, patch: list[dict[str, Any]]) -> Any:
    """RFC 6902 "add", the only operation the webhook sends, applied to a copy (pointers unescaped per RFC 6901)."""
    result = json.loads(json.dumps(document))
    for operation in patch:
        assert operation["op"] == "add", operation
        *parents, last = [t.replace("~1", "/").replace("~0", "~") for t in operation["path"].split("/")[1:]]
        target = result
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        assert isinstance(target, dict), operation
        target[last] = operation["value"]
    return result
