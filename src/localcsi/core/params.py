"""StorageClass and VolumeSnapshotClass parameters, parsed into typed, frozen values.

Unknown keys are refused (a typo must not silently give a different volume), except the
``csi.storage.k8s.io/*`` keys the external-provisioner and external-snapshotter add.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import TypeVar

from localcsi.core.errors import InvalidArgument
from localcsi.core.iolimits import IO_LIMIT_KEYS, NO_LIMITS, IoLimits, parse_io_limits
from localcsi.core.names import validate_thin_pool_name, validate_vg_name
from localcsi.core.sizes import KiB, parse_quantity

SIDECAR_PREFIX = "csi.storage.k8s.io/"
FSTYPE_KEY = "csi.storage.k8s.io/fstype"
LEGACY_FSTYPE_KEYS = ("fsType", "fstype")  # seed 000's StorageClass uses fsType
DEFAULT_THIN_POOL = "localcsi-thinpool"
MAX_STRIPES = 128  # lvm2's limit for the striped segment type
MIN_STRIPE_SIZE = 4 * KiB
MAX_OVERPROVISIONING_RATIO = Fraction(1000)
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_INTEGER = re.compile(r"[0-9]+")


class VolumeType(StrEnum):
    LVM = "LVM"
    DEVICE = "Device"
    MOUNTPOINT = "MountPoint"


class LvmType(StrEnum):
    LINEAR = "linear"
    STRIPING = "striping"
    RAID1 = "raid1"
    THIN = "thin"


class FsType(StrEnum):
    EXT4 = "ext4"
    XFS = "xfs"


class MediaType(StrEnum):
    SSD = "ssd"
    HDD = "hdd"


_E = TypeVar("_E", bound=StrEnum)
_V = TypeVar("_V")


@dataclass(frozen=True)
class VolumeParams:
    volume_type: VolumeType = VolumeType.LVM
    vg_name: str | None = None
    lvm_type: LvmType = LvmType.LINEAR
    stripes: int | None = None  # striping only; None: as many as PVs with room
    stripe_size_bytes: int | None = None  # striping only; None: lvm2's default
    thin_pool: str | None = None  # set (defaulted) exactly when lvm_type is thin
    overprovisioning_ratio: Fraction = Fraction(1)  # thin only
    media_type: MediaType | None = None  # Device only
    io_limits: IoLimits = NO_LIMITS
    fs_type: FsType | None = None  # None: not given; the capability or ext4 decides


@dataclass(frozen=True)
class SnapshotSize:
    """Room for a thick (copy-on-write) snapshot: a percentage of its origin or a fixed size."""

    percent: int | None = None
    size_bytes: int | None = None


DEFAULT_SNAPSHOT_SIZE = SnapshotSize(percent=100)


@dataclass(frozen=True)
class SnapshotParams:
    snapshot_size: SnapshotSize = DEFAULT_SNAPSHOT_SIZE


def _enum(kind: type[_E], key: str, value: str) -> _E:
    for member in kind:
        if member.value.lower() == value.lower():
            return member
    accepted = ", ".join(member.value for member in kind)
    raise InvalidArgument(f"parameter {key}={value!r} is not valid; accepted values: {accepted}")


def _int(key: str, value: str, low: int, high: int) -> int:
    if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidArgument(f"parameter {key}={value!r} is not valid; use a whole number from {low} to {high}")
    return int(value)


def _ratio(key: str, value: str) -> Fraction:
    ratio = Fraction(value) if _DECIMAL.fullmatch(value) else Fraction(0)
    if not 1 <= ratio <= MAX_OVERPROVISIONING_RATIO:
        raise InvalidArgument(
            f"parameter {key}={value!r} is not valid; use a decimal number from 1 to "
            f"{MAX_OVERPROVISIONING_RATIO}, e.g. 1.5"
        )
    return ratio


def _positive_quantity(key: str, value: str) -> int:
    amount = parse_quantity(value, key=f"parameter {key}")
    if amount == 0:
        raise InvalidArgument(f"parameter {key}={value!r} must be above 0; leave {key} out for no limit")
    return amount


def _stripe_size(key: str, value: str) -> int:
    size = parse_quantity(value, key=f"parameter {key}")
    if size < MIN_STRIPE_SIZE or size & (size - 1):
        raise InvalidArgument(f"parameter {key}={value!r} is not valid; use a power of two of at least 4Ki, e.g. 64Ki")
    return size


def _fs_type(params: Mapping[str, str]) -> FsType | None:
    given = {key: params[key] for key in (FSTYPE_KEY, *LEGACY_FSTYPE_KEYS) if params.get(key)}
    values = {_enum(FsType, key, value) for key, value in given.items()}
    if len(values) > 1:
        raise InvalidArgument(f"parameters {sorted(given)} name different filesystems: {given}")
    return values.pop() if values else None


_LVM_ONLY = ("vgName", "lvmType", "stripes", "stripeSize", "thinPool", "overProvisioningRatio")
_KNOWN_VOLUME_KEYS = frozenset({"volumeType", "mediaType", *IO_LIMIT_KEYS, *_LVM_ONLY, *LEGACY_FSTYPE_KEYS})


def _optional(params: Mapping[str, str], key: str, parse: Callable[[str, str], _V]) -> _V | None:
    return parse(key, params[key]) if key in params else None


def _reject_unknown(params: Mapping[str, str], known: frozenset[str]) -> None:
    unknown = sorted(k for k in params if k not in known and not k.startswith(SIDECAR_PREFIX))
    if unknown:
        raise InvalidArgument(f"unknown parameters {unknown}; accepted: {', '.join(sorted(known))}")


def _require_context(params: Mapping[str, str], keys: tuple[str, ...], allowed: bool, context: str) -> None:
    misplaced = [key for key in keys if key in params and not allowed]
    if misplaced:
        raise InvalidArgument(f"parameters {misplaced} apply only {context}")


def parse_volume_params(params: Mapping[str, str]) -> VolumeParams:
    """Parse CreateVolume ``parameters``; every invalid value is INVALID_ARGUMENT naming the key."""
    _reject_unknown(params, _KNOWN_VOLUME_KEYS)
    volume_type = _enum(VolumeType, "volumeType", params.get("volumeType", VolumeType.LVM))
    lvm_type = _enum(LvmType, "lvmType", params.get("lvmType", LvmType.LINEAR))
    is_lvm = volume_type is VolumeType.LVM
    _require_context(params, _LVM_ONLY, is_lvm, "to volumeType LVM")
    _require_context(params, ("mediaType",), volume_type is VolumeType.DEVICE, "to volumeType Device")
    _require_context(params, ("stripes", "stripeSize"), lvm_type is LvmType.STRIPING, "to lvmType striping")
    is_thin = is_lvm and lvm_type is LvmType.THIN
    _require_context(params, ("thinPool", "overProvisioningRatio"), is_thin, "to lvmType thin")
    vg_name = params.get("vgName") or None
    return VolumeParams(
        volume_type=volume_type,
        vg_name=validate_vg_name(vg_name) if vg_name is not None else None,
        lvm_type=lvm_type,
        stripes=_optional(params, "stripes", lambda k, v: _int(k, v, 2, MAX_STRIPES)),
        stripe_size_bytes=_optional(params, "stripeSize", _stripe_size),
        thin_pool=validate_thin_pool_name(params.get("thinPool") or DEFAULT_THIN_POOL) if is_thin else None,
        overprovisioning_ratio=_ratio("overProvisioningRatio", params.get("overProvisioningRatio", "1")),
        media_type=_optional(params, "mediaType", lambda k, v: _enum(MediaType, k, v)),
        io_limits=parse_io_limits(params),
        fs_type=_fs_type(params),
    )


_PERCENT = re.compile(r"([0-9]{1,3})%")


def parse_snapshot_size(value: str, *, key: str = "snapshotSize") -> SnapshotSize:
    """``"25%"`` (of the origin, 1-100) or a quantity such as ``"2Gi"``."""
    match = _PERCENT.fullmatch(value)
    if match:
        percent = int(match[1])
        if not 1 <= percent <= 100:
            raise InvalidArgument(f"parameter {key}={value!r} is not valid; a percentage must be 1% to 100%")
        return SnapshotSize(percent=percent)
    if value.endswith("%"):
        raise InvalidArgument(f"parameter {key}={value!r} is not valid; use a whole percentage like 25%")
    return SnapshotSize(size_bytes=_positive_quantity(key, value))


def parse_snapshot_params(params: Mapping[str, str]) -> SnapshotParams:
    """Parse CreateSnapshot ``parameters`` (VolumeSnapshotClass)."""
    _reject_unknown(params, frozenset({"snapshotSize"}))
    if "snapshotSize" in params:
        return SnapshotParams(snapshot_size=parse_snapshot_size(params["snapshotSize"]))
    return SnapshotParams()
