"""The storage backend the controller driver runs on, and the plans it hands to it.

The driver decides (validation, idempotency, placement, how to fill a volume); a backend carries
the decision out and reads state back. Standalone mode uses ``LocalLvmBackend``: lvm2 on this node.
Cluster mode adds a backend that writes each plan as a LogicalVolume resource and waits for the node
agent to report it done; the agent executes the plan with the same ``LocalLvmBackend``.

Plans are idempotent: executing one again after a crash finishes it instead of doing it twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Protocol

from localcsi.core.ephemeral import POD_DIR_KEY
from localcsi.core.health import Condition
from localcsi.core.ids import LvRef, parse_snapshot_id, parse_volume_id
from localcsi.core.iolimits import IO_LIMIT_KEYS, IoLimits, io_limits_from_fields
from localcsi.core.model import Snapshot, ThinPool, Volume, VolumeGroup
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.tags import OWNER_TAG, LvKind, LvMetadata, Source, SourceKind, encode_tags
from localcsi.resources import logicalvolume as llv

_PREFIX = OWNER_TAG + "/"
# On an LV whose content is still being written (restore, clone). Cleared as the last step, so an LV
# carrying it is never presented as a ready volume; a retried CreateVolume finishes the work.
CREATING_TAG = _PREFIX + "state=creating"
OVERPROVISIONING_KEY = "overprovisioning"
# volume_context keys, for the node plugin (the same on every call: they come from tags): fstype, and
# each IO limit as localcsi.io/<key> (bps, readIops...).
CONTEXT_FSTYPE = _PREFIX + "fstype"


class Fill(StrEnum):
    """How a new volume gets its content."""

    EMPTY = "empty"
    THIN_SNAPSHOT = "thin-snapshot"  # a thin snapshot of the source in the same pool: instant
    BLOCK_COPY = "block-copy"  # a new LV, then a block copy of a point-in-time view of the source


@dataclass(frozen=True)
class NodeStorage:
    """What one node offers: its usable VGs (with PVs) and thin pools."""

    node: str
    vgs: tuple[VolumeGroup, ...]
    pools: tuple[ThinPool, ...]

    def vg(self, name: str) -> VolumeGroup | None:
        return next((vg for vg in self.vgs if vg.name == name), None)

    def pool(self, vg: str, name: str) -> ThinPool | None:
        return next((p for p in self.pools if p.vg == vg and p.name == name), None)


@dataclass(frozen=True)
class Content:
    """Where a new volume's content comes from: the CSI source and the LV that holds it."""

    source: Source
    lv: LvRef
    fill: Fill
    thin: bool  # whether the source LV is a thin LV
    size_bytes: int  # bytes of content to copy: the source volume's size, or a snapshot's restore size


@dataclass(frozen=True)
class VolumePlan:
    ref: LvRef
    name: str  # the CSI name
    placement: Placement
    requested_bytes: int
    content: Content | None = None
    fs_type: str | None = None
    access_type: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # IO limits, overprovisioning

    @property
    def fill(self) -> Fill:
        return Fill.EMPTY if self.content is None else self.content.fill

    def tags(self) -> tuple[str, ...]:
        """The LV's tags once complete (CREATING_TAG is added while content is written)."""
        meta = LvMetadata(
            kind=LvKind.VOLUME,
            name=self.name,
            size_bytes=self.requested_bytes,
            source=self.content.source if self.content else None,
            fs_type=self.fs_type,
            access_type=self.access_type,
        )
        extra = tuple(f"{_PREFIX}{key}={value}" for key, value in sorted(self.extra.items()))
        return (*encode_tags(meta), *extra)


@dataclass(frozen=True)
class SnapshotPlan:
    ref: LvRef
    name: str  # the CSI name
    source: Volume
    cow_bytes: int | None  # room of a thick (copy-on-write) snapshot; None for a thin snapshot

    def tags(self) -> tuple[str, ...]:
        meta = LvMetadata(
            kind=LvKind.SNAPSHOT,
            name=self.name,
            size_bytes=self.source.size_bytes,
            source=Source(SourceKind.VOLUME, self.source.id),
        )
        return encode_tags(meta)


# -- a LogicalVolume's plan, for the agent to execute (written by driver/cluster_resources.py) ------


def _content(data: llv.LogicalVolumeSource) -> Content:
    source = llv.source(data)
    lv = parse_snapshot_id(source.id) if source.kind is SourceKind.SNAPSHOT else parse_volume_id(source.id)
    return Content(source, lv, Fill(data["fill"]), bool(data.get("thin")), int(data["size"]))


def volume_plan(obj: llv.Wire) -> VolumePlan:
    """The plan a Volume resource carries, for the agent to execute (with the spec's current size)."""
    data = llv.spec(obj)
    placement = Placement(
        vg=str(data["vgName"]),
        size_bytes=int(data["size"]),
        lvm_type=LvmType(data.get("lvmType") or LvmType.LINEAR),  # a MountPoint volume has none
        stripes=data.get("stripes"),
        stripe_size_bytes=data.get("stripeSize"),
        thin_pool=data.get("thinPool"),
    )
    source = data.get("source")
    return VolumePlan(
        ref=llv.ref(obj),
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


def snapshot_plan(obj: llv.Wire, source: Volume) -> SnapshotPlan:
    """The plan a Snapshot resource carries; ``source`` is the origin volume as the node sees it."""
    data = llv.spec(obj)
    cow = data.get("cowSize")
    return SnapshotPlan(llv.ref(obj), str(data["csiName"]), source, int(cow) if cow is not None else None)


def tag_value(tags: Sequence[str], key: str) -> str | None:
    prefix = f"{_PREFIX}{key}="
    return next((tag[len(prefix) :] for tag in tags if tag.startswith(prefix)), None)


def ephemeral_pod_dir(volume: Volume) -> str | None:
    """The pod directory of an inline ephemeral volume; None for a volume Kubernetes provisioned."""
    return tag_value(volume.lv.tags, POD_DIR_KEY)


def is_ready(volume: Volume) -> bool:
    return CREATING_TAG not in volume.lv.tags


def overprovisioning_ratio(volume: Volume) -> Fraction:
    """The thin overprovisioning ratio of the class the volume was made with (1 when unknown)."""
    text = tag_value(volume.lv.tags, OVERPROVISIONING_KEY)
    try:
        return Fraction(text) if text else Fraction(1)
    except (ValueError, ZeroDivisionError):
        return Fraction(1)


def volume_context(volume: Volume) -> dict[str, str]:
    """volume_context for the CO: derived from tags, so every RPC reports the same for a volume."""
    context: dict[str, str] = {}
    if volume.fs_type:
        context[CONTEXT_FSTYPE] = volume.fs_type
    for key, value in io_limits(volume.lv.tags).as_strings().items():
        context[_PREFIX + key] = value
    return context


def io_limits(tags: Sequence[str]) -> IoLimits:
    """The IO limits recorded in an LV's tags (``localcsi.io/<key>=<value>``)."""
    return io_limits_from_fields(
        (key, tag_value(tags, key) or "") for key in IO_LIMIT_KEYS if tag_value(tags, key) is not None
    )


def io_limit_tags(limits: IoLimits) -> tuple[str, ...]:
    return tuple(f"{_PREFIX}{key}={value}" for key, value in limits.as_strings().items())


def io_limit_tag_changes(volume: Volume, limits: IoLimits) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tags to add and to delete so that ``volume`` records ``limits``."""
    old = set(io_limit_tags(io_limits(volume.lv.tags)))
    new = set(io_limit_tags(limits))
    return tuple(sorted(new - old)), tuple(sorted(old - new))


class Backend(Protocol):
    """Storage for the controller: state to plan with, and plans to carry out."""

    def nodes(self) -> tuple[str, ...]:
        """Nodes this backend can provision on."""
        ...

    def storage(self, node: str) -> NodeStorage:
        """One node's VGs and thin pools, for placement and GetCapacity."""
        ...

    def volumes(self) -> list[Volume]:
        """Every volume, including unfinished ones (see ``is_ready``)."""
        ...

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, including ones whose deletion was interrupted (``deleting_snapshot``)."""
        ...

    def find_volume(self, lv_name: str) -> Volume | None:
        """The volume whose LV is called ``lv_name``, on any node and in any VG."""
        ...

    def find_snapshot(self, lv_name: str) -> Snapshot | None: ...

    def get_volume(self, ref: LvRef) -> Volume | None: ...

    def get_snapshot(self, ref: LvRef) -> Snapshot | None: ...

    def create_volume(self, plan: VolumePlan) -> Volume:
        """Create the volume, or finish creating it; return it ready."""
        ...

    def delete_volume(self, volume: Volume) -> None:
        """Wipe and remove a volume; FAILED_PRECONDITION while in use or while it has thick snapshots."""
        ...

    def expand_volume(self, volume: Volume, size_bytes: int) -> Volume: ...

    def set_io_limits(self, volume: Volume, limits: IoLimits) -> Volume:
        """Record the volume's new IO limits; the node plugin enforces them on its pods."""
        ...

    def create_snapshot(self, plan: SnapshotPlan) -> Snapshot: ...

    def delete_snapshot(self, snapshot: Snapshot) -> None: ...

    def condition(self, volume: Volume) -> Condition: ...


def deleting_snapshot(snapshot: Snapshot) -> bool:
    """A thick snapshot split from its origin for wiping: a deletion that was interrupted."""
    return not snapshot.thin and not snapshot.lv.is_cow_snapshot
