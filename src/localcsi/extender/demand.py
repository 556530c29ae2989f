"""A pod's whole local-storage demand: every volume of ours, counted together.

PVCs (including generic ephemeral ones, named ``<pod>-<volume>``) whose StorageClass provisioner is
``localcsi.io`` and CSI inline volumes of ``localcsi.io`` become requests; volumes already bound or
committed to a node become pins. Anything that is not ours, or that cannot be ours yet (a PVC whose
StorageClass does not exist, a PVC not created yet), is left out with a note for the log: it must
never block the pod.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from localcsi.core.errors import CoreError
from localcsi.core.scheduling import Pin, PodDemand, VolumeRequest, volume_request
from localcsi.core.sizes import DEFAULT_VOLUME_BYTES
from localcsi.extender.objects import (
    INLINE_SIZE_ATTRIBUTE,
    byte_count,
    class_params,
    inline_params,
    inline_volume_key,
    inline_volumes,
    is_our_pv,
    is_ours,
    items,
    meta,
    pv_node,
    pvc_volume_key,
    requested_bytes,
    section,
    selected_node,
)

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"


class ClusterLookup(Protocol):
    def pvc(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def pv(self, name: str) -> Mapping[str, Any] | None: ...

    def storage_class(self, name: str) -> Mapping[str, Any] | None: ...

    def snapshot_node(self, namespace: str, name: str) -> str | None:
        """The node holding a VolumeSnapshot's data; "" when not ready or unknown; None when not watched."""
        ...


class RecordingLookup:
    """A ClusterLookup that keeps every question asked of it and the answer, so that a demand worked out
    through it can be told to hold still: it does while the same questions get the same answers (the
    view replaces an object on each event, so an unchanged one is the same object)."""

    def __init__(self, lookup: ClusterLookup) -> None:
        self._lookup = lookup
        self._answers: list[tuple[Callable[..., object], tuple[str, ...], object]] = []

    def pvc(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        answer = self._lookup.pvc(namespace, name)
        self._answers.append((self._lookup.pvc, (namespace, name), answer))
        return answer

    def pv(self, name: str) -> Mapping[str, Any] | None:
        answer = self._lookup.pv(name)
        self._answers.append((self._lookup.pv, (name,), answer))
        return answer

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        answer = self._lookup.storage_class(name)
        self._answers.append((self._lookup.storage_class, (name,), answer))
        return answer

    def snapshot_node(self, namespace: str, name: str) -> str | None:
        answer = self._lookup.snapshot_node(namespace, name)
        self._answers.append((self._lookup.snapshot_node, (namespace, name), answer))
        return answer

    def unchanged(self) -> bool:
        """Whether the lookup would answer every question asked so far as it did."""
        for ask, question, answer in self._answers:
            now = ask(*question)
            if now is not answer and now != answer:
                return False
        return True


@dataclass
class _Builder:
    lookup: ClusterLookup
    namespace: str
    default_bytes: int
    requests: list[VolumeRequest] = field(default_factory=list)
    pins: list[Pin] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def claim(self, pvc: Mapping[str, Any], label: str) -> None:
        spec = section(pvc, "spec")
        if self._bound(spec, label, pvc):
            return
        class_name = spec.get("storageClassName")
        if not class_name:
            return  # no class, no dynamic provisioning by us
        storage_class = self.lookup.storage_class(str(class_name))
        if storage_class is None:
            self.notes.append(f"{label}: StorageClass {class_name} does not exist; not counted")
            return
        if not is_ours(storage_class):
            return
        node = selected_node(pvc)
        if node is not None:
            self.pins.append(Pin(node, f"{label} is committed to node {node} (selected-node) and being provisioned"))
            return
        try:
            params = class_params(storage_class)
        except CoreError as error:
            self.problems.append(f"StorageClass {class_name} of {label} is invalid: {error.message}")
            return
        size = requested_bytes(spec, self.default_bytes)
        self.requests.append(volume_request(pvc_volume_key(pvc), label, size, params))
        self._source(spec, label)

    def template(self, pod_uid: str, volume_name: str, claim_spec: Mapping[str, Any], label: str) -> None:
        """A generic ephemeral volume whose PVC the ephemeral controller has not created yet (or not
        that this cache has seen): counted from the pod's template."""
        self.claim({"metadata": {"uid": f"ephemeral-{pod_uid}-{volume_name}"}, "spec": claim_spec}, label)

    def inline(self, pod_uid: str, name: str, attributes: Mapping[str, str], label: str) -> None:
        try:
            params = inline_params(attributes)
        except CoreError as error:
            self.problems.append(f"{label} has invalid volumeAttributes: {error.message}")
            return
        size = byte_count(attributes.get(INLINE_SIZE_ATTRIBUTE), self.default_bytes) or self.default_bytes
        self.requests.append(volume_request(inline_volume_key(pod_uid, name), label, size, params))

    def _bound(self, spec: Mapping[str, Any], label: str, pvc: Mapping[str, Any]) -> bool:
        volume_name = spec.get("volumeName")
        if not volume_name:
            return False
        pv = self.lookup.pv(str(volume_name))
        if pv is None:
            node = selected_node(pvc)
            if node is not None:
                self.pins.append(Pin(node, f"{label} is committed to node {node} (selected-node)"))
            else:
                self.notes.append(f"{label}: bound to PV {volume_name}, which is not in the cache; not counted")
            return True
        if is_our_pv(pv):
            node = pv_node(pv)
            if node is not None:
                self.pins.append(Pin(node, f"{label} is bound to a volume on node {node}"))
        return True

    def _source(self, spec: Mapping[str, Any], label: str) -> None:
        source = section(spec, "dataSourceRef") or section(spec, "dataSource")
        kind, name = source.get("kind"), source.get("name")
        namespace = str(source.get("namespace") or self.namespace)
        if kind == "VolumeSnapshot" and source.get("apiGroup") == SNAPSHOT_GROUP and name:
            node = self.lookup.snapshot_node(namespace, str(name))
            snapshot = f"VolumeSnapshot {namespace}/{name}"
            if node is None:
                self.notes.append(f"{label}: restores {snapshot}, but snapshots are not watched; not pinned")
            elif not node:
                self.problems.append(f"{label} restores {snapshot}, which is not ready (no snapshot handle yet)")
            else:
                self.pins.append(Pin(node, f"{label} restores {snapshot}, whose data is on node {node}"))
        elif kind == "PersistentVolumeClaim" and not source.get("apiGroup") and name:
            origin = self.lookup.pvc(namespace, str(name))
            volume_name = section(origin, "spec").get("volumeName") if origin else None
            pv = self.lookup.pv(str(volume_name)) if volume_name else None
            node = pv_node(pv) if pv is not None and is_our_pv(pv) else None
            if node is not None:
                self.pins.append(Pin(node, f"{label} clones PVC {namespace}/{name}, whose volume is on node {node}"))


def claim_names(pod: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The pod's namespace and the names of the PVCs it uses, generic ephemeral ones included."""
    metadata = meta(pod)
    namespace = str(metadata.get("namespace") or "default")
    names = []
    for volume in items(section(pod, "spec"), "volumes"):
        if "persistentVolumeClaim" in volume:
            names.append(str(section(volume, "persistentVolumeClaim").get("claimName") or ""))
        elif "ephemeral" in volume:
            names.append(f"{metadata.get('name') or ''}-{volume.get('name') or ''}")
    return namespace, [name for name in names if name]


def pod_label(pod: Mapping[str, Any]) -> str:
    return f"{meta(pod).get('namespace', '')}/{meta(pod).get('name', '')}"


def pod_demand(
    pod: Mapping[str, Any], lookup: ClusterLookup, default_bytes: int = DEFAULT_VOLUME_BYTES
) -> tuple[PodDemand, list[str]]:
    """The pod's demand, and notes on the volumes left out (for the log)."""
    metadata = meta(pod)
    namespace = str(metadata.get("namespace") or "default")
    pod_name = str(metadata.get("name") or "")
    uid = str(metadata.get("uid") or "")
    builder = _Builder(lookup, namespace, default_bytes)
    inline = dict(inline_volumes(pod))
    for volume in items(section(pod, "spec"), "volumes"):
        name = str(volume.get("name") or "")
        if "persistentVolumeClaim" in volume:
            claim_name = str(section(volume, "persistentVolumeClaim").get("claimName") or "")
            pvc = lookup.pvc(namespace, claim_name)
            if pvc is None:
                builder.notes.append(f"PVC {namespace}/{claim_name} not found; not counted")
            else:
                builder.claim(pvc, f"PVC {namespace}/{claim_name}")
        elif "ephemeral" in volume:
            claim_name = f"{pod_name}-{name}"
            label = f"PVC {namespace}/{claim_name} (ephemeral)"
            pvc = lookup.pvc(namespace, claim_name)
            if pvc is not None:
                builder.claim(pvc, label)
            else:
                template = section(section(volume, "ephemeral"), "volumeClaimTemplate")
                builder.template(uid, name, section(template, "spec"), label)
        elif name in inline:
            builder.inline(uid, name, inline[name], f"inline volume {name}")
    demand = PodDemand(tuple(builder.requests), tuple(builder.pins), tuple(builder.problems))
    return demand, builder.notes
