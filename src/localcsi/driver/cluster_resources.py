"""Plans as LogicalVolume resources and back: pure conversions shared by the cluster backend and the agent.

The CSI controller writes a ``VolumePlan`` or ``SnapshotPlan`` as a LogicalVolume (intent); the agent
on the node reads the same plan back and executes it with ``LocalLvmBackend``. Until the agent reports
status the controller reads volumes from the resources: a core ``LogicalVolume`` row is synthesised
from spec and status, so the driver's checks (readiness, thin pool, tags) run unchanged.
See ``deploy/crds/logicalvolume.yaml`` for the schema.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from localcsi import API_GROUP, API_VERSION
from localcsi.core.errors import ALL_ERRORS, CoreError, Internal
from localcsi.core.ids import LvRef, make_ref, parse_snapshot_id, parse_volume_id
from localcsi.core.iolimits import IO_LIMIT_KEYS
from localcsi.core.model import LAYOUTS, NEW_ATTRS, LogicalVolume, Snapshot, Volume, snapshot_from_lv, volume_from_lv
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.tags import LvKind, LvMetadata, Source, SourceKind, encode_tags
from localcsi.driver.backend import CREATING_TAG, Content, Fill, SnapshotPlan, VolumePlan

Resource = dict[str, Any]

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


_SOURCE_KINDS = {SourceKind.VOLUME: "Volume", SourceKind.SNAPSHOT: "Snapshot"}


def node_label_value(node: str) -> str:
    """The node name as a label value; names longer than a label allows (63) are hashed."""
    if len(node) <= _MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(node):
        return node
    return "sha256-" + hashlib.sha256(node.encode()).hexdigest()[:40]


def node_selector(node: str) -> str:
    return f"{NODE_LABEL}={node_label_value(node)}"


# -- plan -> resource ------------------------------------------------------------------------------


def _metadata(ref: LvRef) -> dict[str, Any]:
    return {"name": ref.lv, "labels": {NODE_LABEL: node_label_value(ref.node)}}


def volume_resource(plan: VolumePlan) -> Resource:
    placement = plan.placement
    spec: dict[str, Any] = {
        "nodeName": plan.ref.node,
        "vgName": plan.ref.vg,
        "kind": ResourceKind.VOLUME.value,
        "csiName": plan.name,
        "size": placement.size_bytes,
        "requiredBytes": plan.requested_bytes,
        "lvmType": placement.lvm_type.value,
    }
    optional = {
        "thinPool": placement.thin_pool,
        "stripes": placement.stripes,
        "stripeSize": placement.stripe_size_bytes,
        "fsType": plan.fs_type,
        "accessType": plan.access_type,
    }
    spec |= {key: value for key, value in optional.items() if value is not None}
    parameters = {key: value for key, value in plan.extra.items() if key not in IO_LIMIT_KEYS}
    limits = {key: value for key, value in plan.extra.items() if key in IO_LIMIT_KEYS}
    if parameters:
        spec["parameters"] = parameters
    if limits:
        spec["ioLimits"] = limits  # the one mutable part: ControllerModifyVolume patches it
    if plan.content is not None:
        content = plan.content
        spec["source"] = {
            "kind": _SOURCE_KINDS[content.source.kind],
            "id": content.source.id,
            "fill": content.fill.value,
            "thin": content.thin,
            "size": content.size_bytes,
        }
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": _metadata(plan.ref), "spec": spec}


def snapshot_resource(plan: SnapshotPlan) -> Resource:
    spec: dict[str, Any] = {
        "nodeName": plan.ref.node,
        "vgName": plan.ref.vg,
        "kind": ResourceKind.SNAPSHOT.value,
        "csiName": plan.name,
        "size": plan.source.size_bytes,
        "source": {"kind": "Volume", "id": plan.source.id},
    }
    if plan.cow_bytes is None:
        spec["lvmType"] = LvmType.THIN.value
        if plan.source.thin_pool:
            spec["thinPool"] = plan.source.thin_pool
    else:
        spec["cowSize"] = plan.cow_bytes
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": _metadata(plan.ref), "spec": spec}


# -- reading a resource ----------------------------------------------------------------------------


def name(obj: Resource) -> str:
    return str(obj["metadata"]["name"])


def uid(obj: Resource) -> str:
    return str(obj["metadata"].get("uid", ""))


def spec(obj: Resource) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("spec") or {}
    return value


def status(obj: Resource) -> dict[str, Any]:
    value: dict[str, Any] = obj.get("status") or {}
    return value


def phase(obj: Resource) -> Phase:
    try:
        return Phase(status(obj).get("phase") or Phase.PENDING)
    except ValueError:
        return Phase.PENDING


def is_deleting(obj: Resource) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def resource_kind(obj: Resource) -> ResourceKind:
    return ResourceKind(spec(obj).get("kind", ResourceKind.VOLUME.value))


def ref(obj: Resource) -> LvRef:
    """The id of the LV a resource describes; Internal if the resource names no usable LV."""
    data = spec(obj)
    try:
        return make_ref(str(data["nodeName"]), str(data["vgName"]), name(obj))
    except (KeyError, CoreError) as exc:
        raise Internal(f"LogicalVolume {name(obj)} does not name a usable node and VG: {exc}") from None


def condition(obj: Resource, kind: str) -> dict[str, Any] | None:
    conditions: list[dict[str, Any]] = status(obj).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def _source(data: dict[str, Any]) -> Source:
    kind = SourceKind.SNAPSHOT if data.get("kind") == "Snapshot" else SourceKind.VOLUME
    return Source(kind, str(data["id"]))


def _content(data: dict[str, Any]) -> Content:
    source = _source(data)
    lv = parse_snapshot_id(source.id) if source.kind is SourceKind.SNAPSHOT else parse_volume_id(source.id)
    return Content(source, lv, Fill(data["fill"]), bool(data.get("thin")), int(data["size"]))


def volume_plan(obj: Resource) -> VolumePlan:
    """The plan a Volume resource carries, for the agent to execute (with the spec's current size)."""
    data = spec(obj)
    placement = Placement(
        vg=str(data["vgName"]),
        size_bytes=int(data["size"]),
        lvm_type=LvmType(data["lvmType"]),
        stripes=data.get("stripes"),
        stripe_size_bytes=data.get("stripeSize"),
        thin_pool=data.get("thinPool"),
    )
    source = data.get("source")
    return VolumePlan(
        ref=ref(obj),
        name=str(data["csiName"]),
        placement=placement,
        requested_bytes=int(data.get("requiredBytes", 0)),
        content=_content(source) if source else None,
        fs_type=data.get("fsType"),
        access_type=data.get("accessType"),
        extra={
            str(key): str(value)
            for key, value in ((data.get("parameters") or {}) | (data.get("ioLimits") or {})).items()
        },
    )


def snapshot_plan(obj: Resource, source: Volume) -> SnapshotPlan:
    """The plan a Snapshot resource carries; ``source`` is the origin volume as the node sees it."""
    data = spec(obj)
    cow = data.get("cowSize")
    return SnapshotPlan(ref(obj), str(data["csiName"]), source, int(cow) if cow is not None else None)


def source_volume_id(obj: Resource) -> str:
    return str((spec(obj).get("source") or {}).get("id", ""))


# -- resource -> the core's Volume and Snapshot (controller side) ----------------------------------


def _created(obj: Resource) -> datetime | None:
    text = obj["metadata"].get("creationTimestamp")
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _current_size(obj: Resource) -> int:
    return int(status(obj).get("currentSize") or 0)


def resource_volume(obj: Resource) -> Volume | None:
    """The volume a Volume resource describes; marked as being created (CREATING_TAG) until Ready."""
    if resource_kind(obj) is not ResourceKind.VOLUME:
        return None
    plan = volume_plan(obj)
    lvm_type = plan.placement.lvm_type
    tags = plan.tags() if phase(obj) is Phase.READY else (*plan.tags(), CREATING_TAG)
    origin = plan.content.lv.lv if plan.content and plan.content.fill is Fill.THIN_SNAPSHOT else ""
    lv = LogicalVolume(
        vg=plan.ref.vg,
        name=plan.ref.lv,
        size_bytes=_current_size(obj),
        attr=NEW_ATTRS[lvm_type],
        layout=LAYOUTS[lvm_type],
        tags=tags,
        pool_lv=plan.placement.thin_pool or "",
        origin=origin,
        created=_created(obj),
    )
    return volume_from_lv(plan.ref.node, lv)


def snapshot_invalid(obj: Resource) -> bool:
    healthy = condition(obj, HEALTHY_CONDITION)
    return healthy is not None and healthy.get("reason") == SNAPSHOT_INVALID_REASON


def resource_snapshot(obj: Resource) -> Snapshot | None:
    """The snapshot a Snapshot resource describes (thin when it has no cowSize); None until it is Ready.

    One being deleted reads like an interrupted deletion in standalone mode (a split, plain LV): it is
    neither listed nor restorable, and deleting it again waits for it to go.
    """
    if resource_kind(obj) is not ResourceKind.SNAPSHOT:
        return None
    deleting = is_deleting(obj) or phase(obj) is Phase.DELETING
    if phase(obj) is not Phase.READY and not deleting:
        return None
    data = spec(obj)
    at = ref(obj)
    source = _source(data["source"])
    thin = data.get("cowSize") is None
    meta = LvMetadata(LvKind.SNAPSHOT, str(data["csiName"]), int(data["size"]), source)
    if deleting:
        attr = "-wi-a-----"
    elif thin:
        attr = "Vwi-a-tz--"
    else:
        attr = "swi-I-s---" if snapshot_invalid(obj) else "swi-a-s---"
    lv = LogicalVolume(
        vg=at.vg,
        name=at.lv,
        size_bytes=_current_size(obj) or int(data.get("cowSize") or data["size"]),
        attr=attr,
        layout=LAYOUTS[LvmType.THIN] if thin else ("linear",),
        tags=encode_tags(meta),
        pool_lv=str(data.get("thinPool") or ""),
        origin=parse_volume_id(source.id).lv,
        origin_size_bytes=int(data["size"]),
        created=_created(obj),
    )
    return snapshot_from_lv(at.node, lv)


def mismatch(obj: Resource, plan: VolumePlan) -> str | None:
    """Why an existing Volume resource of the plan's LV name is not this request, if it is not.

    Node and VG may differ: the resource is the first attempt's placement, and a retry keeps it.
    """
    existing = volume_plan(obj)
    checks = (
        (existing.requested_bytes != plan.requested_bytes, f"it asks for {existing.requested_bytes} bytes"),
        (
            (existing.content.source if existing.content else None) != (plan.content.source if plan.content else None),
            f"its content source is {existing.content.source if existing.content else 'none'}",
        ),
        (existing.placement.lvm_type is not plan.placement.lvm_type, f"its lvmType is {existing.placement.lvm_type}"),
        (
            existing.placement.thin_pool != plan.placement.thin_pool,
            f"it is in thin pool {existing.placement.thin_pool}",
        ),
        (
            bool(existing.fs_type and plan.fs_type and existing.fs_type != plan.fs_type),
            f"it was made for {existing.fs_type}",
        ),
    )
    return next((message for differs, message in checks if differs), None)


# -- errors in status ------------------------------------------------------------------------------


def code_name(code: str) -> str:
    """A core error's code as written to status.code: RESOURCE_EXHAUSTED -> ResourceExhausted."""
    return "".join(part.capitalize() for part in code.split("_"))


def error_from_status(obj: Resource) -> CoreError:
    """The core error a resource's status reports (Internal for a code this driver does not know)."""
    data = status(obj)
    code = str(data.get("code") or "")
    message = str(data.get("message") or f"the node agent reported {code or 'a failure'} without a message")
    message = f"node {spec(obj).get('nodeName')}: {message}"
    for kind in ALL_ERRORS:
        if code_name(kind.code) == code:
            return kind(message)
    return Internal(message)
