"""Does a pod use localcsi storage? The webhook's one question, answered from the pod, its PVCs and the
StorageClasses.

A pod uses localcsi when one of its volumes is
- a CSI inline volume of driver ``localcsi.io``;
- a generic ephemeral volume whose claim template names a StorageClass of provisioner ``localcsi.io``
  (or names none, and the cluster's default StorageClass is ours);
- a PVC whose StorageClass is ours (or which names none, and the default StorageClass is ours).

When the answer cannot be known (the PVC does not exist yet, its StorageClass does not exist, the
apiserver could not be read), the pod counts as using localcsi: the extender is then asked, which
costs one call and never blocks a pod (it leaves out what it cannot find), while leaving a localcsi pod
unmarked would place it without the extender. A PVC with ``storageClassName: ""`` (bound by hand to a
PV) is not ours to count: its PV's node affinity already places the pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from localcsi import DRIVER_NAME
from localcsi.extender.objects import is_ours, items, meta, section

DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


class LookupFailed(Exception):
    """The apiserver could not answer; the message says why."""


class ClusterLookup(Protocol):
    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The PVC, or None when it does not exist; raises LookupFailed."""
        ...

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        """The StorageClass, or None when it does not exist; raises LookupFailed."""
        ...

    def default_class(self) -> Mapping[str, Any] | None:
        """The StorageClass a PVC without storageClassName gets, or None."""
        ...


def is_default_class(storage_class: Mapping[str, Any]) -> bool:
    annotations = meta(storage_class).get("annotations")
    if not isinstance(annotations, Mapping):
        return False
    return any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)


def choose_default_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """As kube-apiserver's DefaultStorageClass admission (1.26 and later): of several default classes the
    newest, and of equally new ones the first by name."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    by_name = sorted(defaults, key=lambda c: str(meta(c).get("name") or ""))
    return max(by_name, key=lambda c: str(meta(c).get("creationTimestamp") or ""))  # RFC 3339 UTC: sorts as text


def _class_name(storage_class: Mapping[str, Any]) -> str:
    return str(meta(storage_class).get("name") or "")


def _class_reason(class_name: object, lookup: ClusterLookup) -> str | None:
    """Why a claim with this storageClassName is (or may be) ours; None when it is not."""
    if class_name is None:
        default = lookup.default_class()
        if default is not None and is_ours(default):
            return f"the default StorageClass {_class_name(default)} is provisioned by {DRIVER_NAME}"
        return None
    if not isinstance(class_name, str) or not class_name:
        return None
    storage_class = lookup.storage_class(class_name)
    if storage_class is None:
        return f"StorageClass {class_name} does not exist (yet): counted as ours"
    if is_ours(storage_class):
        return f"StorageClass {class_name} is provisioned by {DRIVER_NAME}"
    return None


def _claim_reason(namespace: str, claim_name: str, lookup: ClusterLookup) -> str | None:
    label = f"PVC {namespace}/{claim_name}"
    try:
        claim = lookup.claim(namespace, claim_name)
        if claim is None:
            return f"{label} does not exist (yet): counted as ours"
        reason = _class_reason(section(claim, "spec").get("storageClassName"), lookup)
    except LookupFailed as error:
        return f"{label} could not be read ({error}): counted as ours"
    return f"{label}: {reason}" if reason else None


def localcsi_reason(pod: Mapping[str, Any], namespace: str, lookup: ClusterLookup) -> str | None:
    """Why the pod uses (or may use) localcsi storage, naming the first such volume; None when it does
    not. Volumes that need no apiserver read are judged first."""
    volumes = items(section(pod, "spec"), "volumes")
    for volume in volumes:
        if section(volume, "csi").get("driver") == DRIVER_NAME:
            return f"inline volume {volume.get('name')} of driver {DRIVER_NAME}"
    for volume in volumes:
        if "ephemeral" in volume:
            template = section(section(volume, "ephemeral"), "volumeClaimTemplate")
            try:
                reason = _class_reason(section(template, "spec").get("storageClassName"), lookup)
            except LookupFailed as error:
                reason = f"its StorageClass could not be read ({error}): counted as ours"
            if reason:
                return f"ephemeral volume {volume.get('name')}: {reason}"
    for volume in volumes:
        claim_name = section(volume, "persistentVolumeClaim").get("claimName")
        if isinstance(claim_name, str) and claim_name:
            reason = _claim_reason(namespace, claim_name, lookup)
            if reason:
                return reason
    return None
