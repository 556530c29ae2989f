"""From a CreateVolume request to the plan of a new volume: the request checked into what it asks for
(its shape), the first candidate node with room for it, how its content is filled, and the tags beyond
the standard ones."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from localcsi.core.capabilities import AccessType, effective_fs_type, unsupported_reason, validate_capabilities
from localcsi.core.ephemeral import POD_DIR_KEY
from localcsi.core.errors import InvalidArgument, OutOfRange, ResourceExhausted
from localcsi.core.ids import make_ref
from localcsi.core.iolimits import IoLimits, parse_mutable_parameters
from localcsi.core.names import validate_csi_name
from localcsi.core.node_choice import most_free_first
from localcsi.core.params import LvmType, VolumeParams, VolumeType, parse_volume_params
from localcsi.core.placement import Placement, place
from localcsi.core.sizes import filesystem_floor
from localcsi.driver.backend import OVERPROVISIONING_KEY, Backend, Content, Fill, VolumePlan
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.driver.snapshots import Origin, clone_reserve
from localcsi.driver.topology import candidate_nodes


@dataclass(frozen=True)
class RequestShape:
    """What a CreateVolume request asks for, once validated."""

    params: VolumeParams
    fs_type: str | None
    access_type: str | None
    io_limits: IoLimits  # the class's, with the VolumeAttributesClass's (mutable_parameters) on top
    ephemeral_pod_dir: str


def _check_range(required_bytes: int, limit_bytes: int) -> None:
    if required_bytes < 0 or limit_bytes < 0:
        raise InvalidArgument(
            f"capacity_range must not be negative (required_bytes={required_bytes}, limit_bytes={limit_bytes})"
        )
    if limit_bytes and required_bytes > limit_bytes:
        raise OutOfRange(f"required_bytes {required_bytes} exceeds limit_bytes {limit_bytes}")


def request_shape(request: CreateVolumeRequest) -> RequestShape:
    validate_csi_name(request.name, what="name")
    validate_capabilities(request.capabilities)
    reason = unsupported_reason(request.capabilities)
    if reason:
        raise InvalidArgument(reason)
    params = parse_volume_params(request.parameters)
    if params.volume_type is not VolumeType.LVM and request.source is not None:
        raise InvalidArgument(
            f"a {params.volume_type} volume starts empty: it cannot be made from a snapshot or volume"
        )
    _check_range(request.required_bytes, request.limit_bytes)
    mounts = any(cap.access_type is AccessType.MOUNT for cap in request.capabilities)
    blocks = any(cap.access_type is AccessType.BLOCK for cap in request.capabilities)
    fs_type = str(effective_fs_type(request.capabilities, params)) if mounts else None
    access = None if mounts and blocks else (AccessType.MOUNT if mounts else AccessType.BLOCK)
    limits = params.io_limits.merged(parse_mutable_parameters(request.mutable_parameters))
    return RequestShape(params, fs_type, str(access) if access else None, limits, request.ephemeral_pod_dir)


def extra_tags(shape: RequestShape) -> dict[str, str]:
    """Tags beyond the standard ones: IO limits, the thin overprovisioning ratio, an ephemeral's pod."""
    params = shape.params
    extra = shape.io_limits.as_strings()
    if params.lvm_type is LvmType.THIN and params.overprovisioning_ratio != 1:
        extra[OVERPROVISIONING_KEY] = str(params.overprovisioning_ratio)
    if shape.ephemeral_pod_dir:
        extra[POD_DIR_KEY] = shape.ephemeral_pod_dir
    return extra


def _fill(origin: Origin | None, placement: Placement) -> Fill:
    if origin is None:
        return Fill.EMPTY
    same_pool = placement.vg == origin.ref.vg and placement.thin_pool == origin.pool
    if origin.thin and placement.lvm_type is LvmType.THIN and same_pool:
        return Fill.THIN_SNAPSHOT
    return Fill.BLOCK_COPY


def plan_volume(
    backend: Backend, request: CreateVolumeRequest, shape: RequestShape, lv_name: str, origin: Origin | None
) -> VolumePlan:
    params = shape.params
    if origin is not None and origin.thin and params.lvm_type is LvmType.THIN and params.vg_name is None:
        params = dataclasses.replace(params, vg_name=origin.ref.vg)  # thin snapshots share the pool
    nodes = backend.nodes() if origin is None else (origin.ref.node,)
    if origin is None and (request.topology is None or not request.topology.preferred):
        # Immediate binding: Kubernetes chose no node, so the roomiest for this volume goes first.
        room = {node: (storage.vgs, storage.pools) for node in nodes if (storage := backend.storage(node))}
        nodes = tuple(most_free_first(room, params))
    reasons: list[str] = []
    required_bytes = filesystem_floor(request.required_bytes, request.limit_bytes, shape.fs_type)
    for node in candidate_nodes(nodes, request.topology):
        storage = backend.storage(node)
        try:
            placement = place(
                storage.vgs,
                storage.pools,
                params,
                required_bytes,
                request.limit_bytes,
                source_bytes=origin.size_bytes if origin else 0,
                keep_free=clone_reserve(origin, storage),
            )
        except ResourceExhausted as exc:
            reasons.append(f"{node}: {exc.message}")
            continue
        content = None
        if origin is not None:
            content = Content(origin.source, origin.ref, _fill(origin, placement), origin.thin, origin.size_bytes)
        return VolumePlan(
            ref=make_ref(node, placement.vg, lv_name),
            name=request.name,
            placement=placement,
            requested_bytes=request.required_bytes,
            content=content,
            fs_type=shape.fs_type,
            access_type=shape.access_type,
            extra=extra_tags(shape),
        )
    raise ResourceExhausted("; ".join(reasons) or "no node to place the volume on")
