"""Which VG gets a volume, how large it is once rounded, and how much room is left (GetCapacity).

Space rules follow lvm2's allocator:
- linear: the allocatable PVs' free space, in whole extents;
- striping over N PVs: the size rounds up to a multiple of N extents and each of N distinct PVs
  needs size/N free;
- raid1 (two legs): each of two distinct PVs needs the size plus one extent for its rmeta sub-LV;
- thin: the pool's size times the overprovisioning ratio, minus the virtual sizes already handed
  out (snapshots included: each can grow to its full size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from localcsi.core.errors import OutOfRange, ResourceExhausted
from localcsi.core.model import ThinPool, VolumeGroup
from localcsi.core.params import LvmType, VolumeParams
from localcsi.core.sizes import DEFAULT_VOLUME_BYTES, format_bytes, resolve_capacity_from_source, round_down

RAID1_LEGS = 2


@dataclass(frozen=True)
class Placement:
    vg: str
    size_bytes: int  # exactly what the LV will hold
    lvm_type: LvmType
    stripes: int | None = None
    stripe_size_bytes: int | None = None
    thin_pool: str | None = None


@dataclass(frozen=True)
class KeepFree:
    """Bytes that must stay free in a VG once the volume is placed, and what for."""

    vg: str
    bytes: int
    purpose: str


@dataclass(frozen=True)
class Capacity:
    available_bytes: int  # sum over the eligible VGs of the largest volume each could take
    maximum_volume_bytes: int  # the largest single volume that can be created now


@dataclass(frozen=True)
class _Request:
    params: VolumeParams
    required_bytes: int
    limit_bytes: int
    source_bytes: int
    default_bytes: int

    def size(self, unit: int) -> int:
        return resolve_capacity_from_source(
            self.required_bytes, self.limit_bytes, unit, self.source_bytes, self.default_bytes
        )


# A fit is (placement, bytes left over) or a reason the VG cannot take the volume.
_Fit = tuple[Placement, int] | str


def _find_pool(vg: VolumeGroup, pools: Sequence[ThinPool], name: str | None) -> ThinPool | None:
    return next((p for p in pools if p.vg == vg.name and p.name == name), None)


def _thin_room(pool: ThinPool, params: VolumeParams) -> int:
    virtual_limit = pool.size_bytes * params.overprovisioning_ratio.numerator
    virtual_limit //= params.overprovisioning_ratio.denominator
    return max(0, virtual_limit - pool.virtual_bytes)


def _fit_linear(vg: VolumeGroup, request: _Request) -> _Fit:
    size = request.size(vg.extent_size)
    free = sum(vg.pv_free_bytes)
    if size > free:
        return f"{vg.name}: needs {format_bytes(size)}, {format_bytes(free)} free"
    return Placement(vg.name, size, LvmType.LINEAR), free - size


def _fit_striped(vg: VolumeGroup, request: _Request) -> _Fit:
    frees = vg.pv_free_bytes
    with_room = [free for free in frees if free >= vg.extent_size]
    wanted = request.params.stripes
    counts = [wanted] if wanted else list(range(len(with_room), 1, -1))
    if not counts:
        return f"{vg.name}: striping needs at least 2 PVs with free space, {len(with_room)} have some"
    reasons: list[str] = []
    range_error: OutOfRange | None = None
    for stripes in counts:
        try:
            size = request.size(vg.extent_size * stripes)
        except OutOfRange as exc:  # rounding to N extents can overshoot the limit where N-1 does not
            range_error = range_error or exc
            continue
        if sum(1 for free in frees if free >= size // stripes) >= stripes:
            placement = Placement(vg.name, size, LvmType.STRIPING, stripes, request.params.stripe_size_bytes)
            return placement, sum(frees) - size
        reasons.append(f"{stripes} PVs with {format_bytes(size // stripes)} free each")
    if range_error is not None and not reasons:
        raise range_error
    return f"{vg.name}: striping needs " + " or ".join(reasons)


def _fit_raid1(vg: VolumeGroup, request: _Request) -> _Fit:
    size = request.size(vg.extent_size)
    per_leg = size + vg.extent_size
    frees = vg.pv_free_bytes
    if sum(1 for free in frees if free >= per_leg) < RAID1_LEGS:
        return f"{vg.name}: raid1 needs 2 PVs with {format_bytes(per_leg)} free each"
    return Placement(vg.name, size, LvmType.RAID1), sum(frees) - RAID1_LEGS * per_leg


def _fit_thin(vg: VolumeGroup, request: _Request, pools: Sequence[ThinPool]) -> _Fit:
    pool = _find_pool(vg, pools, request.params.thin_pool)
    if pool is None:
        return f"{vg.name}: has no thin pool {request.params.thin_pool!r}"
    size = request.size(vg.extent_size)
    room = _thin_room(pool, request.params)
    if size > room:
        return (
            f"{vg.name}/{pool.name}: needs {format_bytes(size)} virtual, {format_bytes(room)} left at "
            f"overprovisioning ratio {float(request.params.overprovisioning_ratio):g}"
        )
    return Placement(vg.name, size, LvmType.THIN, thin_pool=pool.name), room - size


def _fit(vg: VolumeGroup, request: _Request, pools: Sequence[ThinPool]) -> _Fit:
    if not vg.writable or vg.partial:
        return f"{vg.name}: not writable or missing a PV (vg_attr {vg.attr})"
    lvm_type = request.params.lvm_type
    if lvm_type is LvmType.THIN:
        return _fit_thin(vg, request, pools)
    fits: dict[LvmType, Callable[[VolumeGroup, _Request], _Fit]] = {
        LvmType.LINEAR: _fit_linear,
        LvmType.STRIPING: _fit_striped,
        LvmType.RAID1: _fit_raid1,
    }
    return fits[lvm_type](vg, request)


def _candidates(vgs: Sequence[VolumeGroup], params: VolumeParams) -> Sequence[VolumeGroup]:
    if params.vg_name is None:
        if not vgs:
            raise ResourceExhausted("this node has no LVM volume groups; create one or let the agent do it")
        return vgs
    chosen = [vg for vg in vgs if vg.name == params.vg_name]
    if not chosen:
        known = ", ".join(sorted(vg.name for vg in vgs)) or "none"
        raise ResourceExhausted(f"volume group {params.vg_name!r} (vgName) is not on this node; it has: {known}")
    return chosen


def place(
    vgs: Sequence[VolumeGroup],
    pools: Sequence[ThinPool],
    params: VolumeParams,
    required_bytes: int,
    limit_bytes: int,
    *,
    source_bytes: int = 0,
    default_bytes: int = DEFAULT_VOLUME_BYTES,
    keep_free: KeepFree | None = None,
) -> Placement:
    """Pick the VG for a new volume: the best fit (least room left over), ties broken by name.

    OUT_OF_RANGE when the capacity range cannot be met at all; RESOURCE_EXHAUSTED when no VG has room,
    or when a VG would be left with less free than ``keep_free`` asks (only VGs that still would are
    candidates).
    """
    request = _Request(params, required_bytes, limit_bytes, source_bytes, default_bytes)
    if keep_free is not None:
        kept = next((vg for vg in vgs if vg.name == keep_free.vg), None)
        if kept is None or kept.free_bytes < keep_free.bytes:
            has = format_bytes(kept.free_bytes) if kept is not None else "nothing"
            raise ResourceExhausted(
                f"volume group {keep_free.vg} needs {format_bytes(keep_free.bytes)} free for {keep_free.purpose}; "
                f"it has {has}"
            )
    fits: list[tuple[int, str, Placement]] = []
    reasons: list[str] = []
    range_errors: list[OutOfRange] = []
    for vg in _candidates(vgs, params):
        try:
            fit = _fit(vg, request, pools)
        except OutOfRange as exc:
            range_errors.append(exc)
            continue
        if isinstance(fit, str):
            reasons.append(fit)
        elif keep_free is not None and vg.name == keep_free.vg and _vg_free_after(vg, *fit) < keep_free.bytes:
            kept_bytes = format_bytes(keep_free.bytes)
            reasons.append(f"{vg.name}: needs {kept_bytes} left free besides the volume, for {keep_free.purpose}")
        else:
            fits.append((fit[1], vg.name, fit[0]))
    if fits:
        return min(fits, key=lambda item: (item[0], item[1]))[2]
    if range_errors and not reasons:
        raise range_errors[0]
    raise ResourceExhausted(f"no volume group can take a {params.lvm_type} volume: " + "; ".join(reasons))


def _vg_free_after(vg: VolumeGroup, placement: Placement, left: int) -> int:
    """The VG's free bytes once ``placement`` is made (``left``: what its fit left over); a thin volume
    takes its room from the pool, not from the VG."""
    return vg.free_bytes if placement.lvm_type is LvmType.THIN else left


def _nth_largest(frees: Sequence[int], n: int) -> int:
    return frees[n - 1] if len(frees) >= n else 0


def max_volume_bytes(vg: VolumeGroup, pools: Sequence[ThinPool], params: VolumeParams) -> int:
    """The largest volume of ``params``' type that ``vg`` could take right now."""
    if not vg.writable or vg.partial:
        return 0
    extent = vg.extent_size
    frees = vg.pv_free_bytes
    match params.lvm_type:
        case LvmType.LINEAR:
            return round_down(sum(frees), extent)
        case LvmType.STRIPING:
            counts = [params.stripes] if params.stripes else range(2, len(frees) + 1)
            return max((n * round_down(_nth_largest(frees, n), extent) for n in counts), default=0)
        case LvmType.RAID1:
            return max(0, round_down(_nth_largest(frees, RAID1_LEGS), extent) - extent)
        case LvmType.THIN:
            pool = _find_pool(vg, pools, params.thin_pool)
            return round_down(_thin_room(pool, params), extent) if pool else 0
    return 0


def capacity(vgs: Sequence[VolumeGroup], pools: Sequence[ThinPool], params: VolumeParams) -> Capacity:
    """GetCapacity for ``params``: over the named VG, or over every VG when vgName is absent."""
    eligible = [vg for vg in vgs if params.vg_name is None or vg.name == params.vg_name]
    sizes = [max_volume_bytes(vg, pools, params) for vg in eligible]
    return Capacity(available_bytes=sum(sizes), maximum_volume_bytes=max(sizes, default=0))
