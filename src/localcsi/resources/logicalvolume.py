"""LogicalVolume (``deploy/crds/logicalvolume.yaml``): one volume (LVM, Device or MountPoint) or snapshot on one node.

The CSI controller writes the spec (intent); the agent on ``spec.nodeName`` makes the LV and reports
status. This module holds the schema: the types, names, phases, the finalizer, the node label, and
accessors that read a resource without knowing what a plan is (those conversions are the driver's:
``localcsi.driver.backend`` and ``localcsi.driver.cluster_resources``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, cast

from localcsi.core.errors import ALL_ERRORS, CoreError, Internal
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.params import VolumeType
from localcsi.core.tags import Source, SourceKind
from localcsi.resources.meta import Condition, ObjectMeta

KIND = "LogicalVolume"
FINALIZER = "localcsi.io/logicalvolume"
# The agent lists and watches only its own node's resources through this label.
NODE_LABEL = "localcsi.io/node"
HEALTHY_CONDITION = "Healthy"
SNAPSHOT_INVALID_REASON = "SnapshotInvalid"
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_MAX_LABEL_VALUE = 63


class Phase(StrEnum):
    PENDING = "Pending"
    CREATING = "Creating"
    READY = "Ready"
    FAILED = "Failed"
    DELETING = "Deleting"


class ResourceKind(StrEnum):
    VOLUME = "Volume"
    SNAPSHOT = "Snapshot"


SOURCE_KINDS = {SourceKind.VOLUME: "Volume", SourceKind.SNAPSHOT: "Snapshot"}


class LogicalVolumeSource(TypedDict):
    """A Volume's content source (restore or clone), or the volume a Snapshot is of."""

    kind: str  # Volume or Snapshot
    id: str  # the CSI id, node/vg/lv
    fill: NotRequired[str]  # thin-snapshot or block-copy (a Volume's source only)
    thin: NotRequired[bool]
    size: NotRequired[int]


class LogicalVolumeSpec(TypedDict):
    nodeName: str
    vgName: str
    kind: str  # ResourceKind
    csiName: str
    size: int
    requiredBytes: NotRequired[int]
    lvmType: NotRequired[str]
    thinPool: NotRequired[str]
    stripes: NotRequired[int]
    stripeSize: NotRequired[int]
    source: NotRequired[LogicalVolumeSource]
    fsType: NotRequired[str]
    accessType: NotRequired[str]
    parameters: NotRequired[dict[str, str]]
    ioLimits: NotRequired[dict[str, str]]
    cowSize: NotRequired[int]
    volumeType: NotRequired[str]  # LVM (absent: LVM), Device or MountPoint
    mediaType: NotRequired[str]  # a Device volume's disk type when the class asks: hdd or ssd
    limitBytes: NotRequired[int]  # capacity_range.limit_bytes of an exclusive volume (0: none)


class LogicalVolumeStatus(TypedDict, total=False):
    phase: str  # Phase
    currentSize: int
    volumeId: str
    message: str
    code: str  # a core error's code as code_name() spells it
    observedGeneration: int
    conditions: list[Condition]
    device: str  # the disk a Device volume took (its stable name)
    mountPoint: str  # the mount point a MountPoint volume took


class LogicalVolume(TypedDict):
    apiVersion: NotRequired[str]
    kind: NotRequired[str]
    metadata: ObjectMeta
    spec: LogicalVolumeSpec
    status: NotRequired[LogicalVolumeStatus]


def node_label_value(node: str) -> str:
    """The node name as a label value; names longer than a label allows (63) are hashed."""
    if len(node) <= _MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(node):
        return node
    return "sha256-" + hashlib.sha256(node.encode()).hexdigest()[:40]


def node_selector(node: str) -> str:
    return f"{NODE_LABEL}={node_label_value(node)}"


def metadata(at: LvRef) -> ObjectMeta:
    """A new resource's metadata: named after the LV, labelled with its node."""
    return {"name": at.lv, "labels": {NODE_LABEL: node_label_value(at.node)}}


# -- reading a resource ----------------------------------------------------------------------------

# What the accessors read: a LogicalVolume, or the apiserver's JSON for one as a client returns it.
# They hand back the typed parts (spec, status, conditions), so a key read through them is checked.
Wire = Mapping[str, Any]


def name(obj: Wire) -> str:
    return str(obj["metadata"]["name"])


def uid(obj: Wire) -> str:
    return str(obj["metadata"].get("uid", ""))


def spec(obj: Wire) -> LogicalVolumeSpec:
    return cast(LogicalVolumeSpec, obj.get("spec") or {})


def status(obj: Wire) -> LogicalVolumeStatus:
    return cast(LogicalVolumeStatus, obj.get("status") or {})


def phase(obj: Wire) -> Phase:
    try:
        return Phase(status(obj).get("phase") or Phase.PENDING)
    except ValueError:
        return Phase.PENDING


def is_deleting(obj: Wire) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def resource_kind(obj: Wire) -> ResourceKind:
    return ResourceKind(spec(obj).get("kind", ResourceKind.VOLUME.value))


def volume_type(obj: Wire) -> VolumeType:
    """LVM, Device or MountPoint; a resource without the field is LVM."""
    try:
        return VolumeType(spec(obj).get("volumeType") or VolumeType.LVM.value)
    except ValueError:
        raise Internal(f"LogicalVolume {name(obj)} has an unknown volumeType") from None


def ref(obj: Wire) -> LvRef:
    """The id of the LV a resource describes; Internal if the resource names no usable LV."""
    data = spec(obj)
    try:
        return make_ref(str(data["nodeName"]), str(data["vgName"]), name(obj))
    except (KeyError, CoreError) as exc:
        raise Internal(f"LogicalVolume {name(obj)} does not name a usable node and VG: {exc}") from None


def condition(obj: Wire, kind: str) -> Condition | None:
    conditions = status(obj).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def snapshot_invalid(obj: Wire) -> bool:
    healthy = condition(obj, HEALTHY_CONDITION)
    return healthy is not None and healthy.get("reason") == SNAPSHOT_INVALID_REASON


def source(data: LogicalVolumeSource) -> Source:
    kind = SourceKind.SNAPSHOT if data.get("kind") == "Snapshot" else SourceKind.VOLUME
    return Source(kind, str(data["id"]))


def source_volume_id(obj: Wire) -> str:
    source = spec(obj).get("source")
    return str(source.get("id", "")) if source else ""


def created(obj: Wire) -> datetime | None:
    text = obj["metadata"].get("creationTimestamp")
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def current_size(obj: Wire) -> int:
    return int(status(obj).get("currentSize") or 0)


# -- errors in status ------------------------------------------------------------------------------


def code_name(code: str) -> str:
    """A core error's code as written to status.code: RESOURCE_EXHAUSTED -> ResourceExhausted."""
    return "".join(part.capitalize() for part in code.split("_"))


def error_from_status(obj: Wire) -> CoreError:
    """The core error a resource's status reports (Internal for a code this driver does not know)."""
    data = status(obj)
    code = str(data.get("code") or "")
    message = str(data.get("message") or f"the node agent reported {code or 'a failure'} without a message")
    message = f"node {spec(obj).get('nodeName')}: {message}"
    for kind in ALL_ERRORS:
        if code_name(kind.code) == code:
            return kind(message)
    return Internal(message)
