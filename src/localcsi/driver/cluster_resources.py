"""Plans as LogicalVolume resources, and resources as the core's volumes and snapshots (controller side).

The CSI controller writes a ``VolumePlan`` or ``SnapshotPlan`` as a LogicalVolume (intent); the agent
on the node reads the same plan back (``volume_plan`` and ``snapshot_plan`` in ``driver/backend.py``)
and executes it with ``LocalLvmBackend``. Until the agent reports status the controller reads volumes
from the resources: a core ``LogicalVolume`` row is synthesised from spec and status, so the driver's
checks (readiness, thin pool, tags) run unchanged. The schema (types, names, phases, accessors) is
``localcsi.resources.logicalvolume``; ``deploy/crds/logicalvolume.yaml`` is the CRD.
"""

from __future__ import annotations

from typing import Any

from localcsi import API_GROUP, API_VERSION
from localcsi.core.ids import parse_volume_id
from localcsi.core.iolimits import IO_LIMIT_KEYS
from localcsi.core.model import LAYOUTS, NEW_ATTRS, LogicalVolume, Snapshot, Volume, snapshot_from_lv, volume_from_lv
from localcsi.core.params import LvmType
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.driver.backend import CREATING_TAG, Fill, SnapshotPlan, VolumePlan, volume_plan
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import KIND, SOURCE_KINDS, LogicalVolumeSpec, Phase, ResourceKind

# A LogicalVolume as the apiserver's JSON, as clients return it; llv's accessors read it typed.
Resource = dict[str, Any]


# -- plan -> resource ------------------------------------------------------------------------------


def volume_resource(plan: VolumePlan) -> llv.LogicalVolume:
    placement = plan.placement
    spec: LogicalVolumeSpec = {
        "nodeName": plan.ref.node,
        "vgName": plan.ref.vg,
        "kind": ResourceKind.VOLUME.value,
        "csiName": plan.name,
        "size": placement.size_bytes,
        "requiredBytes": plan.requested_bytes,
        "lvmType": placement.lvm_type.value,
    }
    if placement.thin_pool is not None:
        spec["thinPool"] = placement.thin_pool
    if placement.stripes is not None:
        spec["stripes"] = placement.stripes
    if placement.stripe_size_bytes is not None:
        spec["stripeSize"] = placement.stripe_size_bytes
    if plan.fs_type is not None:
        spec["fsType"] = plan.fs_type
    if plan.access_type is not None:
        spec["accessType"] = plan.access_type
    parameters = {key: value for key, value in plan.extra.items() if key not in IO_LIMIT_KEYS}
    limits = {key: value for key, value in plan.extra.items() if key in IO_LIMIT_KEYS}
    if parameters:
        spec["parameters"] = parameters
    if limits:
        spec["ioLimits"] = limits  # the one mutable part: ControllerModifyVolume patches it
    if plan.content is not None:
        content = plan.content
        spec["source"] = {
            "kind": SOURCE_KINDS[content.source.kind],
            "id": content.source.id,
            "fill": content.fill.value,
            "thin": content.thin,
            "size": content.size_bytes,
        }
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": llv.metadata(plan.ref), "spec": spec}


def snapshot_resource(plan: SnapshotPlan) -> llv.LogicalVolume:
    spec: LogicalVolumeSpec = {
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
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": llv.metadata(plan.ref), "spec": spec}


# -- resource -> the core's Volume and Snapshot (controller side) ----------------------------------


def resource_volume(obj: llv.Wire) -> Volume | None:
    """The volume a Volume resource describes; marked as being created (CREATING_TAG) until Ready."""
    if llv.resource_kind(obj) is not ResourceKind.VOLUME:
        return None
    plan = volume_plan(obj)
    lvm_type = plan.placement.lvm_type
    tags = plan.tags() if llv.phase(obj) is Phase.READY else (*plan.tags(), CREATING_TAG)
    origin = plan.content.lv.lv if plan.content and plan.content.fill is Fill.THIN_SNAPSHOT else ""
    lv = LogicalVolume(
        vg=plan.ref.vg,
        name=plan.ref.lv,
        size_bytes=llv.current_size(obj),
        attr=NEW_ATTRS[lvm_type],
        layout=LAYOUTS[lvm_type],
        tags=tags,
        pool_lv=plan.placement.thin_pool or "",
        origin=origin,
        created=llv.created(obj),
    )
    return volume_from_lv(plan.ref.node, lv)


def resource_snapshot(obj: llv.Wire) -> Snapshot | None:
    """The snapshot a Snapshot resource describes (thin when it has no cowSize); None until it is Ready.

    One being deleted reads like an interrupted deletion in standalone mode (a split, plain LV): it is
    neither listed nor restorable, and deleting it again waits for it to go.
    """
    if llv.resource_kind(obj) is not ResourceKind.SNAPSHOT:
        return None
    deleting = llv.is_deleting(obj) or llv.phase(obj) is Phase.DELETING
    if llv.phase(obj) is not Phase.READY and not deleting:
        return None
    data = llv.spec(obj)
    at = llv.ref(obj)
    source = llv.source(data["source"])
    thin = data.get("cowSize") is None
    meta = LvMetadata(LvKind.SNAPSHOT, str(data["csiName"]), int(data["size"]), source)
    if deleting:
        attr = "-wi-a-----"
    elif thin:
        attr = "Vwi-a-tz--"
    else:
        attr = "swi-I-s---" if llv.snapshot_invalid(obj) else "swi-a-s---"
    lv = LogicalVolume(
        vg=at.vg,
        name=at.lv,
        size_bytes=llv.current_size(obj) or int(data.get("cowSize") or data["size"]),
        attr=attr,
        layout=LAYOUTS[LvmType.THIN] if thin else ("linear",),
        tags=encode_tags(meta),
        pool_lv=str(data.get("thinPool") or ""),
        origin=parse_volume_id(source.id).lv,
        origin_size_bytes=int(data["size"]),
        created=llv.created(obj),
    )
    return snapshot_from_lv(at.node, lv)


def mismatch(obj: llv.Wire, plan: VolumePlan) -> str | None:
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
