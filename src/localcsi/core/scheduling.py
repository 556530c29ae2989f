"""Capacity-aware scheduling, the model: what a pod still needs, and what a node has left.

A node's capacity view starts from what its agent last reported in NodeLocalStorage status: each
VG's ``allocatable`` bytes (free space minus the configured reserve) and the LVs that existed then.
Volumes the agent had not seen yet are subtracted: volumes the cluster knows about (PVs,
LogicalVolumes) and volumes committed to the node but not created yet (PVCs carrying
``volume.kubernetes.io/selected-node``). Each has a key, the LV name it has or will have, so a volume
the report already includes is not counted twice, and one volume known from several sources counts once.

Reservations for pods being scheduled are kept apart (see ``scheduling_fit``) because they change on
every request, while this view changes only when the cluster does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from functools import cached_property

from localcsi.core.params import LvmType, MediaType, VolumeParams, VolumeType
from localcsi.core.sizes import MiB, format_bytes, round_up

# The agent does not report extent sizes; lvm2's default extent is the conservative unit to round to.
ACCOUNTING_EXTENT = 4 * MiB
EXCLUSIVE_TYPES = (VolumeType.DEVICE, VolumeType.MOUNTPOINT)


class Strategy(StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


def lvm_charge(size_bytes: int, params: VolumeParams) -> int:
    """VG bytes a volume takes: raid1 twice (plus its metadata extents); thin its size over the ratio."""
    size = round_up(max(size_bytes, 1), ACCOUNTING_EXTENT)
    if params.lvm_type is LvmType.RAID1:
        return 2 * (size + ACCOUNTING_EXTENT)
    if params.lvm_type is LvmType.THIN:
        ratio: Fraction = params.overprovisioning_ratio
        return round_up(-(-size * ratio.denominator // ratio.numerator), ACCOUNTING_EXTENT)
    return size


@dataclass(frozen=True)
class VolumeRequest:
    """One volume of the pod that still needs room on whichever node the pod gets."""

    key: str  # the LV name it will get (dedupes it against the same volume once it exists)
    label: str  # for messages: "PVC ns/name", "inline volume ns/pod/vol"
    size_bytes: int
    volume_type: VolumeType = VolumeType.LVM
    vg_name: str | None = None
    charge_bytes: int = 0  # LVM: what the VG loses; filled from size_bytes when 0
    media_type: MediaType | None = None  # Device / MountPoint only

    def __post_init__(self) -> None:
        if self.volume_type is VolumeType.LVM and not self.charge_bytes:
            object.__setattr__(self, "charge_bytes", lvm_charge(self.size_bytes, VolumeParams()))

    def describe(self) -> str:
        return self._description

    @cached_property
    def _description(self) -> str:  # once per request: every node that fails names it in its reason
        return f"{self.label} ({format_bytes(self.size_bytes)})"


def volume_request(key: str, label: str, size_bytes: int, params: VolumeParams) -> VolumeRequest:
    return VolumeRequest(
        key=key,
        label=label,
        size_bytes=size_bytes,
        volume_type=params.volume_type,
        vg_name=params.vg_name,
        charge_bytes=lvm_charge(size_bytes, params) if params.volume_type is VolumeType.LVM else 0,
        media_type=params.media_type,
    )


@dataclass(frozen=True)
class Pin:
    """The pod can only run on ``node``; ``reason`` says which volume holds it there."""

    node: str
    reason: str


@dataclass(frozen=True)
class PodDemand:
    """Everything a pod asks of local storage: the volumes still to be placed, and its pins.

    Problems are reasons the pod cannot be placed anywhere yet (e.g. a restore whose snapshot is
    not ready); they fail every node with the same message.
    """

    requests: tuple[VolumeRequest, ...] = ()
    pins: tuple[Pin, ...] = ()
    problems: tuple[str, ...] = ()
    # Derived once per pod so the per-node fit does no sorting or grouping.
    named: Mapping[str, tuple[VolumeRequest, ...]] = field(init=False, repr=False, compare=False)
    unnamed: tuple[VolumeRequest, ...] = field(init=False, repr=False, compare=False)
    exclusive: tuple[VolumeRequest, ...] = field(init=False, repr=False, compare=False)
    lvm_bytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named: dict[str, list[VolumeRequest]] = {}
        unnamed: list[VolumeRequest] = []
        for request in self.requests:
            if request.volume_type is not VolumeType.LVM:
                continue
            if request.vg_name is None:
                unnamed.append(request)
            else:
                named.setdefault(request.vg_name, []).append(request)
        unnamed.sort(key=lambda r: (-r.charge_bytes, r.key))
        exclusive = sorted(
            (r for r in self.requests if r.volume_type in EXCLUSIVE_TYPES), key=lambda r: (-r.size_bytes, r.key)
        )
        object.__setattr__(self, "named", {vg: tuple(items) for vg, items in named.items()})
        object.__setattr__(self, "unnamed", tuple(unnamed))
        object.__setattr__(self, "exclusive", tuple(exclusive))
        lvm = sum(r.charge_bytes for r in self.requests if r.volume_type is VolumeType.LVM)
        object.__setattr__(self, "lvm_bytes", lvm)

    @property
    def empty(self) -> bool:
        """Nothing for this driver: the extender passes every node."""
        return not self.requests and not self.pins and not self.problems


@dataclass(frozen=True)
class VgReport:
    name: str
    size_bytes: int  # what this driver may ever use: the VG's size minus the reserve
    free_bytes: int  # ``allocatable`` when reported: still free for new volumes
    problem: str | None = None  # set when the VG must not be used, e.g. "condition DiskFault"


@dataclass(frozen=True)
class DiskReport:
    """A whole disk (volumeType Device) or mount point (MountPoint) that one volume takes exclusively."""

    name: str
    kind: VolumeType
    size_bytes: int
    media_type: MediaType | None = None
    problem: str | None = None


@dataclass(frozen=True)
class NodeReport:
    """What the node's agent reports in its NodeLocalStorage status."""

    node: str
    vgs: tuple[VgReport, ...] = ()
    disks: tuple[DiskReport, ...] = ()
    lv_keys: frozenset[str] = frozenset()  # LVs that existed at the report: already not free


@dataclass(frozen=True)
class Usage:
    """A volume that takes room on a node: placed, or committed and still being created.

    ``vg`` is None for an LVM volume committed to the node whose VG is not chosen yet; ``disk`` is
    None for an exclusive volume whose disk is not chosen yet.
    """

    key: str
    charge_bytes: int = 0
    vg: str | None = None
    volume_type: VolumeType = VolumeType.LVM
    disk: str | None = None
    size_bytes: int = 0  # exclusive volumes: the smallest disk that can hold it
    media_type: MediaType | None = None


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """A node's room for new volumes, reservations not included."""

    node: str
    vg_free: Mapping[str, int]  # usable VGs only; may be negative when the node is over-committed
    vg_problems: Mapping[str, str]
    free_disks: tuple[DiskReport, ...]  # usable, unused; smallest first
    disk_counts: Mapping[VolumeType, int]  # usable exclusive disks, used or not, by kind
    size_bytes: int  # over the usable VGs, for scores
    free_bytes: int
    # Derived once, read per node per request by filter and prioritize.
    used_bytes: int = field(init=False, repr=False, compare=False)
    single_vg: str | None = field(init=False, repr=False, compare=False)  # the only usable VG, if one
    single_vg_free: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "used_bytes", self.size_bytes - self.free_bytes)
        only = next(iter(self.vg_free.items())) if len(self.vg_free) == 1 else (None, 0)
        object.__setattr__(self, "single_vg", only[0])
        object.__setattr__(self, "single_vg_free", only[1])


def best_fit(room: dict[str, int], charge: int) -> str | None:
    """The VG left with the least room after taking ``charge``, ties by name; its room is reduced.
    None when no VG has room. The one best fit: for committed volumes here, for a pod's volumes in
    scheduling_fit, and (in array form, over many nodes at once) scheduling_fit._best_fit_rows."""
    best: str | None = None
    best_left = 0
    for name, free in room.items():
        left = free - charge
        if left >= 0 and (best is None or left < best_left or (left == best_left and name < best)):
            best, best_left = name, left
    if best is not None:
        room[best] = best_left
    return best


def _disk_matches(disk: DiskReport, kind: VolumeType, size_bytes: int, media: MediaType | None) -> bool:
    return disk.kind is kind and disk.size_bytes >= size_bytes and (media is None or disk.media_type is media)


def _charge_unplaced(vg_free: dict[str, int], unplaced: list[Usage]) -> None:
    """Committed volumes whose VG the provisioner has yet to choose: assume its best-fit choice."""
    if len(vg_free) == 1:  # every choice is that VG, whatever the order (a row is rebuilt on each commit)
        ((only, free),) = vg_free.items()
        vg_free[only] = free - sum(usage.charge_bytes for usage in unplaced)
        return
    for usage in sorted(unplaced, key=lambda u: (-u.charge_bytes, u.key)):
        if best_fit(vg_free, usage.charge_bytes) is None and vg_free:  # fits nowhere: count it on the roomiest
            vg_free[max(vg_free, key=lambda n: (vg_free[n], n))] -= usage.charge_bytes


def node_capacity(report: NodeReport, usages: Iterable[Usage]) -> NodeCapacity:
    """``report`` minus the ``usages`` it does not include yet (deduplicated by key, all on this node)."""
    usable_vgs = [vg for vg in report.vgs if vg.problem is None]
    vg_free = {vg.name: vg.free_bytes for vg in usable_vgs}
    unplaced: list[Usage] = []
    disks_taken: set[str] = set()
    unplaced_exclusive: list[Usage] = []
    for usage in usages:
        if usage.key in report.lv_keys:
            continue
        if usage.volume_type in EXCLUSIVE_TYPES:
            if usage.disk is None:
                unplaced_exclusive.append(usage)
            else:
                disks_taken.add(usage.disk)
        elif usage.vg is None:
            unplaced.append(usage)
        elif usage.vg in vg_free:
            vg_free[usage.vg] -= usage.charge_bytes
    _charge_unplaced(vg_free, unplaced)
    usable_disks = sorted((d for d in report.disks if d.problem is None), key=lambda d: (d.size_bytes, d.name))
    free_disks = [d for d in usable_disks if d.name not in disks_taken]
    for usage in sorted(unplaced_exclusive, key=lambda u: (-u.size_bytes, u.key)):
        taken = next(
            (d for d in free_disks if _disk_matches(d, usage.volume_type, usage.size_bytes, usage.media_type)), None
        )
        if taken is not None:
            free_disks.remove(taken)
    counts: dict[VolumeType, int] = {}
    for disk in usable_disks:
        counts[disk.kind] = counts.get(disk.kind, 0) + 1
    return NodeCapacity(
        node=report.node,
        vg_free=vg_free,
        vg_problems={vg.name: vg.problem for vg in report.vgs if vg.problem is not None},
        free_disks=tuple(free_disks),
        disk_counts=counts,
        size_bytes=sum(max(vg.size_bytes, vg.free_bytes) for vg in usable_vgs),
        free_bytes=sum(vg_free.values()),
    )


def with_usage_changed(
    cap: NodeCapacity, report: NodeReport, before: Usage | None, after: Usage | None
) -> NodeCapacity | None:
    """``cap`` (``node_capacity(report, usages)``) with one volume's usage changed from ``before`` to
    ``after`` (None: absent), as ``node_capacity`` would give it, without going over every usage again:
    a node with many volumes gets a commit after another while a backlog is scheduled. None where only
    ``node_capacity`` can tell: a node with several usable VGs (where a volume whose VG is not chosen
    yet takes the best fit left by the others) or an exclusive volume (disks are matched as a whole)."""
    if len(cap.vg_free) > 1 or any(u is not None and u.volume_type in EXCLUSIVE_TYPES for u in (before, after)):
        return None
    taken = _single_vg_charge(cap, report, after) - _single_vg_charge(cap, report, before)
    if not taken:
        return cap
    vg_free = {vg: free - taken for vg, free in cap.vg_free.items()}
    return replace(cap, vg_free=vg_free, free_bytes=cap.free_bytes - taken)


def _single_vg_charge(cap: NodeCapacity, report: NodeReport, usage: Usage | None) -> int:
    """What an LVM ``usage`` takes off a node of at most one usable VG, as ``node_capacity`` counts it."""
    if usage is None or usage.key in report.lv_keys or not cap.vg_free:
        return 0
    return usage.charge_bytes if usage.vg is None or usage.vg in cap.vg_free else 0
