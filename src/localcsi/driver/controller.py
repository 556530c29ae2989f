"""The controller service's decisions: validation, idempotency by CSI name, placement, locks.

Each request is checked in full before anything changes. The LV name derives from the CSI name, so
a retry (after a timeout, or a crash mid-create) finds the LV of the first attempt; its tags must
then describe the same request, or the answer is ALREADY_EXISTS. Work is carried out by a
``Backend``: lvm2 on this node in standalone mode, the node agent in cluster mode.
"""

from __future__ import annotations

from collections.abc import Mapping

from localcsi.core.capabilities import (
    AccessType,
    Capability,
    unsupported_reason,
    validate_capabilities,
)
from localcsi.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from localcsi.core.exclusive import is_device_vg, is_exclusive_group, is_mountpoint_group
from localcsi.core.ids import parse_volume_id
from localcsi.core.iolimits import parse_mutable_parameters
from localcsi.core.locks import OperationLocks
from localcsi.core.model import Volume
from localcsi.core.names import volume_lv_name
from localcsi.core.pagination import Page, paginate
from localcsi.core.params import LvmType, VolumeType, parse_volume_params
from localcsi.core.placement import Capacity, Placement, capacity
from localcsi.core.sizes import (
    capacity_satisfied,
    format_bytes,
    resolve_capacity_from_source,
    resolve_expansion,
)
from localcsi.driver.backend import (
    Backend,
    Content,
    Fill,
    VolumePlan,
    io_limits,
    is_ready,
    overprovisioning_ratio,
)
from localcsi.driver.create_volume_plan import RequestShape, extra_tags, plan_volume, request_shape
from localcsi.driver.exclusive_volumes import Exclusive, ExclusiveVolumes, refuse_exclusive_expansion
from localcsi.driver.requests import CapacityRequest, CreateVolumeRequest, ExpandVolumeRequest
from localcsi.driver.snapshots import SnapshotDriver, check_page_request, resolve_origin
from localcsi.driver.topology import topology_node


def _kind(volume: Volume) -> str:
    if is_device_vg(volume.ref.vg):
        return "a Device volume"
    return "a MountPoint volume" if is_mountpoint_group(volume.ref.vg) else "an LVM volume"


def _mismatch(existing: Volume, request: CreateVolumeRequest, shape: RequestShape) -> str | None:
    """Why an existing volume of the same name is not what this request asks for, if it is not."""
    params = shape.params
    if is_ready(existing):
        size_differs = not capacity_satisfied(existing.size_bytes, request.required_bytes, request.limit_bytes)
    else:  # an interrupted thin restore may not have grown to its final size yet
        size_differs = existing.requested_bytes != request.required_bytes
    checks = (
        (size_differs, f"its size {existing.size_bytes} does not fit the requested capacity_range"),
        (existing.source != request.source, f"its content source is {existing.source or 'none'}"),
        (
            is_device_vg(existing.ref.vg) != (params.volume_type is VolumeType.DEVICE)
            or is_mountpoint_group(existing.ref.vg) != (params.volume_type is VolumeType.MOUNTPOINT),
            f"it is {_kind(existing)}",
        ),
        (existing.lvm_type is not params.lvm_type, f"its lvmType is {existing.lvm_type}"),
        (
            params.vg_name not in (None, existing.ref.vg) and not is_device_vg(existing.ref.vg),
            f"it is in volume group {existing.ref.vg}",
        ),
        (
            params.lvm_type is LvmType.THIN and existing.thin_pool != params.thin_pool,
            f"it is in thin pool {existing.thin_pool}",
        ),
        (
            bool(shape.fs_type and existing.fs_type and shape.fs_type != existing.fs_type),
            f"it was made for {existing.fs_type}",
        ),
    )
    return next((message for differs, message in checks if differs), None)


class ControllerDriver:
    def __init__(
        self, backend: Backend, locks: OperationLocks | None = None, exclusive: Exclusive | None = None
    ) -> None:
        self.backend = backend
        self.locks = locks or OperationLocks()
        self.snapshots = SnapshotDriver(backend, self.locks)
        self.exclusive: Exclusive = exclusive or ExclusiveVolumes()  # Device and MountPoint volumes, where served

    # -- CreateVolume --------------------------------------------------------------------------

    def create_volume(self, request: CreateVolumeRequest) -> Volume:
        shape = request_shape(request)
        lv_name = volume_lv_name(request.name)
        source_key = self._source_key(request)
        with self.locks.hold(exclusive=[lv_name], shared=[source_key] if source_key else []):
            existing = self.backend.find_volume(lv_name)
            if existing is not None and is_ready(existing):
                return self._resume(existing, request, shape)
            if shape.params.volume_type is not VolumeType.LVM:
                return self.exclusive.create(self.backend.nodes(), request, shape.params, shape.fs_type,
                                             shape.access_type)  # fmt: skip
            if existing is not None:
                return self._resume(existing, request, shape)
            origin = resolve_origin(self.backend, request.source)
            plan = plan_volume(self.backend, request, shape, lv_name, origin)
            try:
                return self.backend.create_volume(plan)
            except ResourceExhausted:
                if plan.content is not None:  # its LV may exist by now: a second placement could duplicate it
                    raise
                # lvm2 had less room than the view said (another create took it): place once more.
                again = plan_volume(self.backend, request, shape, lv_name, origin)
                if again == plan:
                    raise
                return self.backend.create_volume(again)

    def _source_key(self, request: CreateVolumeRequest) -> str | None:
        if request.source is None:
            return None
        if not request.source.id:
            raise InvalidArgument(f"volume_content_source: the {request.source.kind} id is required")
        return request.source.id.rpartition("/")[2]

    def _resume(self, existing: Volume, request: CreateVolumeRequest, shape: RequestShape) -> Volume:
        if existing.name != request.name:
            raise Internal(
                f"LV {existing.ref.vg}/{existing.ref.lv} belongs to name {request.name!r} but its tags say "
                f"{existing.name!r}; inspect it with `lvs -o lv_name,lv_tags {existing.ref.vg}`"
            )
        mismatch = _mismatch(existing, request, shape)
        if mismatch:
            raise AlreadyExists(
                f"volume {request.name!r} already exists as {existing.id} but {mismatch}; "
                "repeat the original request or use another name"
            )
        if is_ready(existing):
            return existing
        return self._finish(existing, request, shape)

    def _finish(self, existing: Volume, request: CreateVolumeRequest, shape: RequestShape) -> Volume:
        """Complete a create that was interrupted while its content was being written."""
        try:
            origin = resolve_origin(self.backend, request.source)
        except (NotFound, FailedPrecondition):
            self.backend.delete_volume(existing)  # its content can never be completed
            raise
        if origin is None:
            raise Internal(f"{existing.id} is marked as being filled but has no content source")
        size = existing.size_bytes
        storage = self.backend.storage(existing.ref.node)
        group = storage.vg(existing.ref.vg)
        if existing.lv.origin == origin.ref.lv and group is not None:  # a thin snapshot, maybe not grown yet
            unit = group.extent_size
            size = max(size, resolve_capacity_from_source(request.required_bytes, request.limit_bytes,
                                                          unit, origin.size_bytes))  # fmt: skip
        placement = Placement(existing.ref.vg, size, shape.params.lvm_type, thin_pool=existing.thin_pool)
        fill = Fill.THIN_SNAPSHOT if existing.lv.origin == origin.ref.lv else Fill.BLOCK_COPY
        content = Content(origin.source, origin.ref, fill, origin.thin, origin.size_bytes)
        plan = VolumePlan(existing.ref, request.name, placement, request.required_bytes, content,
                          shape.fs_type, shape.access_type, extra_tags(shape))  # fmt: skip
        return self.backend.create_volume(plan)

    # -- DeleteVolume, ControllerExpandVolume --------------------------------------------------

    def delete_volume(self, volume_id: str) -> None:
        try:
            ref = parse_volume_id(volume_id)
        except NotFound:
            return  # not an id this driver issued: nothing to delete
        with self.locks.hold(exclusive=[ref.lv]):
            if is_exclusive_group(ref.vg):
                self.exclusive.delete(self.backend.nodes(), ref)
                return
            volume = self.backend.get_volume(ref)
            if volume is not None:
                self.backend.delete_volume(volume)

    def expand_volume(self, request: ExpandVolumeRequest) -> tuple[Volume, bool]:
        """The expanded volume, and whether the node must grow its filesystem too."""
        ref = parse_volume_id(request.volume_id)
        if not request.required_bytes and not request.limit_bytes:
            raise InvalidArgument("capacity_range is required to expand a volume: set required_bytes")
        refuse_exclusive_expansion(ref, request.required_bytes)
        with self.locks.hold(exclusive=[ref.lv]):
            volume = self._ready_volume(request.volume_id)
            group = self.backend.storage(ref.node).vg(ref.vg)
            if group is None:
                raise NotFound(f"volume group {ref.vg} of {request.volume_id} is not available")
            size = resolve_expansion(request.required_bytes, request.limit_bytes, volume.size_bytes,
                                     group.extent_size)  # fmt: skip
            if size > volume.size_bytes:
                if volume.lv.is_thin_volume:
                    self._check_thin_growth(volume, size - volume.size_bytes)
                elif size - volume.size_bytes > group.free_bytes:
                    # lvm2 would overflow on a size like 2^62 ("New size of 0 not permitted"): refuse it here.
                    raise ResourceExhausted(
                        f"volume group {ref.vg} has {format_bytes(group.free_bytes)} free; growing {volume.id} to "
                        f"{format_bytes(size)} needs {format_bytes(size - volume.size_bytes)}"
                    )
                volume = self.backend.expand_volume(volume, size)
        block = request.capability is not None and request.capability.access_type is AccessType.BLOCK
        return volume, not block and volume.access_type != AccessType.BLOCK

    def _check_thin_growth(self, volume: Volume, growth: int) -> None:
        pool = self.backend.storage(volume.ref.node).pool(volume.ref.vg, volume.lv.pool_lv)
        if pool is None:
            raise NotFound(f"thin pool {volume.ref.vg}/{volume.lv.pool_lv} of {volume.id} is not available")
        ratio = overprovisioning_ratio(volume)
        room = pool.size_bytes * ratio.numerator // ratio.denominator - pool.virtual_bytes
        if growth > room:
            raise ResourceExhausted(
                f"thin pool {pool.vg}/{pool.name} has {max(room, 0)} bytes of virtual room at "
                f"overprovisioning ratio {float(ratio):g}; growing {volume.id} needs {growth}"
            )

    def modify_volume(self, volume_id: str, mutable_parameters: Mapping[str, str]) -> Volume:
        """ControllerModifyVolume: only IO limits are mutable; keys not given are left as they are."""
        if not volume_id:
            raise InvalidArgument("volume_id is required")
        changes = parse_mutable_parameters(mutable_parameters)
        ref = parse_volume_id(volume_id)
        with self.locks.hold(exclusive=[ref.lv]):
            volume = self._ready_volume(volume_id)
            limits = io_limits(volume.lv.tags).merged(changes)
            if limits == io_limits(volume.lv.tags):
                return volume
            return self.backend.set_io_limits(volume, limits)

    # -- reads ---------------------------------------------------------------------------------

    def _ready_volume(self, volume_id: str) -> Volume:
        ref = parse_volume_id(volume_id)
        if is_mountpoint_group(ref.vg):
            return self.exclusive.mount_point_volume(ref)
        volume = self.backend.get_volume(ref)
        if volume is None or not is_ready(volume):
            raise NotFound(f"volume {volume_id} does not exist")
        return volume

    def get_volume(self, volume_id: str) -> Volume:
        return self._ready_volume(volume_id)

    def list_volumes(self, max_entries: int, starting_token: str) -> Page[Volume]:
        check_page_request(max_entries, starting_token)
        volumes = [volume for volume in self.backend.volumes() if is_ready(volume)] + self.exclusive.volumes()
        return paginate(volumes, lambda volume: volume.id, max_entries, starting_token)

    def validate_capabilities(
        self, volume_id: str, capabilities: tuple[Capability, ...], parameters: dict[str, str]
    ) -> str | None:
        """None when every capability can be met; otherwise the reason (an unconfirmed answer)."""
        parse_volume_id(volume_id)
        validate_capabilities(capabilities)
        volume = self._ready_volume(volume_id)
        reason = unsupported_reason(capabilities)
        if reason is None and parameters:
            try:
                params = parse_volume_params(parameters)
            except InvalidArgument as exc:
                return exc.message
            if params.lvm_type is not volume.lvm_type:
                return f"the volume is {volume.lvm_type}, the parameters ask for {params.lvm_type}"
        if reason is None and volume.fs_type:
            wanted = {cap.fs_type for cap in capabilities if cap.access_type is AccessType.MOUNT and cap.fs_type}
            if wanted - {volume.fs_type}:
                return f"the volume was made for {volume.fs_type}, not {', '.join(sorted(wanted))}"
        return reason

    def capacity(self, request: CapacityRequest) -> Capacity:
        params = parse_volume_params(request.parameters)
        if request.capabilities:
            validate_capabilities(request.capabilities)
        none = Capacity(available_bytes=0, maximum_volume_bytes=0)
        if unsupported_reason(request.capabilities):
            return none
        nodes = self.backend.nodes()
        if request.topology is not None:
            nodes = tuple(node for node in nodes if node == topology_node(request.topology))
        if params.volume_type is not VolumeType.LVM:
            node = topology_node(request.topology) if request.topology is not None else None
            return self.exclusive.capacity(params, nodes, node)
        per_node = [capacity(s.vgs, s.pools, params) for s in map(self.backend.storage, nodes)]
        return Capacity(
            available_bytes=sum(c.available_bytes for c in per_node),
            maximum_volume_bytes=max((c.maximum_volume_bytes for c in per_node), default=0),
        )
