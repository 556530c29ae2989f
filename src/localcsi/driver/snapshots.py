"""Snapshots: thin snapshots of thin volumes, copy-on-write snapshots of thick ones.

A thick snapshot's room comes from the VolumeSnapshotClass parameter ``snapshotSize`` (default
100%: it can never overflow, see ``core.snapshots``). Restoring either kind gives a normal
writable volume (see ``ControllerDriver``); ``resolve_origin`` finds what a new volume is filled from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from localcsi.core.errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound
from localcsi.core.ids import LvRef, make_ref, parse_snapshot_id, parse_volume_id
from localcsi.core.locks import OperationLocks
from localcsi.core.model import Snapshot
from localcsi.core.names import snapshot_lv_name, validate_csi_name
from localcsi.core.pagination import Page, decode_token, paginate
from localcsi.core.params import parse_snapshot_params
from localcsi.core.placement import KeepFree
from localcsi.core.snapshots import cow_bytes
from localcsi.core.tags import Source, SourceKind
from localcsi.driver.backend import Backend, NodeStorage, SnapshotPlan, deleting_snapshot, is_ready
from localcsi.driver.exclusive_volumes import refuse_exclusive_source
from localcsi.driver.requests import ListSnapshotsRequest


@dataclass(frozen=True)
class Origin:
    """The LV a new volume's content comes from."""

    source: Source
    ref: LvRef
    thin: bool
    pool: str | None
    size_bytes: int  # a volume's size, or a snapshot's restore size


def clone_reserve(origin: Origin | None, storage: NodeStorage) -> KeepFree | None:
    """What a clone of a thick volume needs kept free: one extent of the source's VG, for the temporary
    snapshot the copy is read from. Checked when placing, so that a clone refused for want of it
    leaves nothing behind (a 10,000-request fuzz found the new LV kept after a refusal)."""
    if origin is None or origin.source.kind is not SourceKind.VOLUME or origin.thin:
        return None
    group = storage.vg(origin.ref.vg)
    if group is None:  # not in the report yet: the backend's own check still refuses a clone without room
        return None
    return KeepFree(origin.ref.vg, group.extent_size, f"the temporary snapshot of clone source {origin.ref.lv}")


def resolve_origin(backend: Backend, source: Source | None) -> Origin | None:
    """The existing, usable LV behind a volume_content_source; NOT_FOUND if there is none."""
    if source is None:
        return None
    if source.kind is SourceKind.SNAPSHOT:
        snapshot = backend.get_snapshot(parse_snapshot_id(source.id))
        if snapshot is None or deleting_snapshot(snapshot):
            raise NotFound(f"source snapshot {source.id} does not exist")
        if not snapshot.ready:
            raise FailedPrecondition(
                f"source snapshot {source.id} overflowed its copy-on-write space and its content is lost"
            )
        return Origin(source, snapshot.ref, snapshot.thin, snapshot.lv.pool_lv or None, snapshot.size_bytes)
    ref = parse_volume_id(source.id)
    refuse_exclusive_source(ref, "cloned")
    volume = backend.get_volume(ref)
    if volume is None or not is_ready(volume):
        raise NotFound(f"source volume {source.id} does not exist")
    return Origin(source, volume.ref, volume.lv.is_thin_volume, volume.thin_pool, volume.size_bytes)


def check_page_request(max_entries: int, starting_token: str) -> None:
    """Refuse a bad page request before reading any state: a foreign token is ABORTED."""
    if max_entries < 0:
        raise InvalidArgument(f"max_entries must not be negative, got {max_entries}")
    if starting_token:
        decode_token(starting_token)


class SnapshotDriver:
    def __init__(self, backend: Backend, locks: OperationLocks) -> None:
        self.backend = backend
        self.locks = locks

    def create(self, name: str, source_volume_id: str, parameters: Mapping[str, str]) -> Snapshot:
        validate_csi_name(name, what="name")
        source_ref = parse_volume_id(source_volume_id)
        refuse_exclusive_source(source_ref, "snapshotted")
        params = parse_snapshot_params(parameters)
        lv_name = snapshot_lv_name(name)
        with self.locks.hold(exclusive=[lv_name], shared=[source_ref.lv]):
            existing = self.backend.find_snapshot(lv_name)
            if existing is not None:
                if existing.name != name:
                    raise Internal(
                        f"LV {existing.ref.vg}/{existing.ref.lv} belongs to snapshot name {name!r} but its "
                        f"tags say {existing.name!r}; inspect it with `lvs -o lv_name,lv_tags`"
                    )
                if existing.source_volume_id != source_volume_id:
                    raise AlreadyExists(
                        f"snapshot {name!r} already exists for source volume {existing.source_volume_id}; "
                        "use another name to snapshot a different volume"
                    )
                if not deleting_snapshot(existing):
                    return existing
                self.backend.delete_snapshot(existing)  # finish the interrupted deletion, then start over
            source = self.backend.get_volume(source_ref)
            if source is None or not is_ready(source):
                raise NotFound(f"source volume {source_volume_id} does not exist")
            cow: int | None = None
            if not source.lv.is_thin_volume:
                group = self.backend.storage(source.ref.node).vg(source.ref.vg)
                if group is None:
                    raise NotFound(f"volume group {source.ref.vg} of {source_volume_id} is not available")
                cow = cow_bytes(source.size_bytes, group.extent_size, params.snapshot_size)
            ref = make_ref(source.ref.node, source.ref.vg, lv_name)
            return self.backend.create_snapshot(SnapshotPlan(ref, name, source, cow))

    def delete(self, snapshot_id: str) -> None:
        try:
            ref = parse_snapshot_id(snapshot_id)
        except NotFound:
            return  # not an id this driver issued: nothing to delete
        with self.locks.hold(exclusive=[ref.lv]):
            snapshot = self.backend.get_snapshot(ref)
            if snapshot is not None:
                self.backend.delete_snapshot(snapshot)

    def list(self, request: ListSnapshotsRequest) -> Page[Snapshot]:
        check_page_request(request.max_entries, request.starting_token)
        if request.snapshot_id:
            try:
                found = self.backend.get_snapshot(parse_snapshot_id(request.snapshot_id))
            except (NotFound, InvalidArgument):
                found = None
            snapshots = [found] if found is not None else []
        else:
            snapshots = self.backend.snapshots()
        wanted = [
            snap
            for snap in snapshots
            if not deleting_snapshot(snap)
            and (not request.source_volume_id or snap.source_volume_id == request.source_volume_id)
        ]
        return paginate(wanted, lambda snap: snap.id, request.max_entries, request.starting_token)
