"""CSI inline ephemeral volumes: what the kubelet's NodePublishVolume asks for, validated.

The kubelet names an inline volume ``csi-<sha256 hex of pod UID and volume name>`` and, with
``podInfoOnMount``, marks its ``volume_context`` with ``csi.storage.k8s.io/ephemeral: "true"``. The
rest of the context is the pod's ``volumeAttributes``: ``size`` plus StorageClass parameters (the
extender reads them the same way). The LV records the pod's directory, the kubelet's own sign that
the pod is still on the node: the volume is collected only once that directory is gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from localcsi.core.errors import InvalidArgument
from localcsi.core.params import SIDECAR_PREFIX, VolumeParams, VolumeType, parse_volume_params
from localcsi.core.sizes import DEFAULT_VOLUME_BYTES, parse_quantity

EPHEMERAL_CONTEXT_KEY = "csi.storage.k8s.io/ephemeral"
POD_UID_CONTEXT_KEY = "csi.storage.k8s.io/pod.uid"
SIZE_ATTRIBUTE = "size"
# The LV tag value: the pod directory (the kubelet's path, tag-safe characters only).
POD_DIR_KEY = "ephemeral-pod"
_KUBELET_VOLUME_ID = re.compile(r"csi-[0-9a-f]{64}")
_UID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TAG_SAFE_DIRS = r"/(?:[A-Za-z0-9_+.\-]+/)*"
_POD_DIR = re.compile(rf"(?P<dir>{_TAG_SAFE_DIRS}pods/(?P<uid>{_UID}))/volumes/kubernetes\.io~csi/[^/]+/mount/?")


@dataclass(frozen=True)
class EphemeralRequest:
    size_bytes: int
    parameters: dict[str, str]  # the volumeAttributes other than size, as StorageClass parameters
    params: VolumeParams
    pod_dir: str  # <kubelet root>/pods/<uid>


def is_ephemeral(context: Mapping[str, str]) -> bool:
    return context.get(EPHEMERAL_CONTEXT_KEY, "").lower() == "true"


def is_kubelet_volume_id(volume_id: str) -> bool:
    """The form of id the kubelet makes up for an inline volume (never one this driver issues)."""
    return _KUBELET_VOLUME_ID.fullmatch(volume_id) is not None


def inline_parameters(attributes: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in attributes.items() if key != SIZE_ATTRIBUTE}


def pod_dir(target_path: str, context: Mapping[str, str]) -> str:
    """The pod's directory under the kubelet's root, from the target path (checked against the
    pod UID the kubelet passes, when it does)."""
    match = _POD_DIR.fullmatch(target_path)
    if match is None or "/../" in target_path or "/./" in target_path:
        raise InvalidArgument(
            f"target_path {target_path[:200]!r} is not a kubelet pod volume path "
            "(<root>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount): an inline ephemeral volume "
            "is collected when its pod's directory goes, so it needs one"
        )
    uid = context.get(POD_UID_CONTEXT_KEY)
    if uid and uid != match["uid"]:
        raise InvalidArgument(f"target_path belongs to pod {match['uid']}, but the volume context says pod {uid}")
    return match["dir"]


def parse_ephemeral(volume_id: str, target_path: str, context: Mapping[str, str]) -> EphemeralRequest:
    """Validate an inline volume's publish; every problem is INVALID_ARGUMENT and nothing is made."""
    if not is_kubelet_volume_id(volume_id):
        raise InvalidArgument(f"volume_id {volume_id[:100]!r} is not a kubelet inline volume id (csi-<64 hex digits>)")
    attributes = {k: v for k, v in context.items() if not k.startswith(SIDECAR_PREFIX)}
    size_text = attributes.get(SIZE_ATTRIBUTE)
    size = parse_quantity(size_text, key=f"volumeAttributes {SIZE_ATTRIBUTE}") if size_text else DEFAULT_VOLUME_BYTES
    if size == 0:
        raise InvalidArgument(f"volumeAttributes {SIZE_ATTRIBUTE} must be above 0")
    parameters = inline_parameters(attributes)
    params = parse_volume_params(parameters)
    if params.volume_type is not VolumeType.LVM:
        raise InvalidArgument(f"an inline ephemeral volume is an LVM volume; volumeType {params.volume_type} is not")
    return EphemeralRequest(size, parameters, params, pod_dir(target_path, context))
