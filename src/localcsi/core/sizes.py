"""Byte sizes: Kubernetes quantities, rounding to extents, CSI capacity ranges."""

from __future__ import annotations

import re
from fractions import Fraction

from localcsi.core.errors import InvalidArgument, OutOfRange

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

DEFAULT_VOLUME_BYTES = GiB
# CSI sizes travel as int64.
MAX_BYTES = 2**63 - 1

_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
# The exponent alternative comes first so that "1E3" is 1000 while "1E" is one exa.
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:[eE](?P<exp>[+-]?[0-9]{1,3})|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)"
)
_MAX_QUANTITY_LENGTH = 64
_MAX_EXPONENT = 40


def parse_quantity(text: str, *, key: str = "quantity") -> int:
    """Parse a Kubernetes quantity ("1Gi", "1.5G", "512", "1e6") into whole bytes, rounding up.

    ``key`` names the parameter in error messages.
    """
    hint = 'use a non-negative number with an optional suffix, e.g. "1048576", "512Mi", "1.5Gi", "10G"'
    if len(text) > _MAX_QUANTITY_LENGTH:
        raise InvalidArgument(f"{key}: {text[:20]!r}... is too long to be a quantity; {hint}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise InvalidArgument(f"{key}: {text!r} is not a quantity; {hint}")
    if match["sign"] == "-":
        raise InvalidArgument(f"{key}: {text!r} is negative; {hint}")
    value = Fraction(match["number"])
    if match["exp"] is not None:
        exponent = int(match["exp"])
        if abs(exponent) > _MAX_EXPONENT:
            raise InvalidArgument(f"{key}: {text!r} is out of range (at most {MAX_BYTES} bytes)")
        value *= Fraction(10) ** exponent
    else:
        value *= _SUFFIXES[match["suffix"] or ""]
    result = -((-value.numerator) // value.denominator)  # ceiling: a fraction of a byte is a byte
    if result > MAX_BYTES:
        raise InvalidArgument(f"{key}: {text!r} is out of range (at most {MAX_BYTES} bytes)")
    return result


def round_up(size: int, unit: int) -> int:
    """Round ``size`` up to a whole multiple of ``unit`` (e.g. an extent)."""
    if unit <= 0:
        raise ValueError(f"rounding unit must be positive, got {unit}")
    return -(-size // unit) * unit


def round_down(size: int, unit: int) -> int:
    if unit <= 0:
        raise ValueError(f"rounding unit must be positive, got {unit}")
    return size // unit * unit


def format_bytes(size: int) -> str:
    """A short human form for messages: "4 MiB", "1.5 GiB", "512 B"."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            text = f"{size / unit:.2f}".rstrip("0").rstrip(".")
            exact = Fraction(text) * unit == size
            return f"{text} {name}" if exact else f"{text} {name} ({size} B)"
    return f"{size} B"


def _check_range(required_bytes: int, limit_bytes: int) -> None:
    if required_bytes < 0 or limit_bytes < 0:
        raise InvalidArgument(
            f"capacity_range must not be negative (required_bytes={required_bytes}, "
            f"limit_bytes={limit_bytes}); use 0 to leave a bound unset"
        )
    if limit_bytes and required_bytes > limit_bytes:
        raise OutOfRange(
            f"capacity_range cannot be satisfied: required_bytes {required_bytes} exceeds limit_bytes {limit_bytes}"
        )


def resolve_capacity(
    required_bytes: int, limit_bytes: int, unit: int, default_bytes: int = DEFAULT_VOLUME_BYTES
) -> int:
    """The size to allocate for a CSI CapacityRange (0 means unset), in whole ``unit``s.

    required set: required rounded up to ``unit``; it must still fit under the limit.
    required unset: ``default_bytes`` rounded up, or the limit rounded down when the default is larger.
    """
    _check_range(required_bytes, limit_bytes)
    if required_bytes:
        size = round_up(required_bytes, unit)
        if limit_bytes and size > limit_bytes:
            raise OutOfRange(
                f"capacity_range cannot be satisfied: required_bytes {required_bytes} rounds up to "
                f"{format_bytes(size)} (a whole number of {format_bytes(unit)} extents), above "
                f"limit_bytes {limit_bytes}; raise limit_bytes or ask for a multiple of {unit}"
            )
        return size
    size = round_up(default_bytes, unit)
    if limit_bytes and size > limit_bytes:
        size = round_down(limit_bytes, unit)
        if size == 0:
            raise OutOfRange(
                f"capacity_range cannot be satisfied: limit_bytes {limit_bytes} is smaller than one "
                f"{format_bytes(unit)} extent"
            )
    return size


def resolve_capacity_from_source(
    required_bytes: int,
    limit_bytes: int,
    unit: int,
    source_bytes: int,
    default_bytes: int = DEFAULT_VOLUME_BYTES,
) -> int:
    """Like resolve_capacity, for a volume restored or cloned from a source of ``source_bytes``.

    Without required_bytes the volume is as large as its source; it may never be smaller.
    """
    if source_bytes <= 0:
        return resolve_capacity(required_bytes, limit_bytes, unit, default_bytes)
    _check_range(required_bytes, limit_bytes)
    if limit_bytes and limit_bytes < source_bytes:
        raise OutOfRange(
            f"limit_bytes {limit_bytes} is below the source's size {format_bytes(source_bytes)}; "
            "a restored or cloned volume is at least as large as its source"
        )
    size = resolve_capacity(required_bytes or source_bytes, limit_bytes, unit, default_bytes)
    if size < source_bytes:
        raise OutOfRange(
            f"a volume of {format_bytes(size)} cannot hold its source of {format_bytes(source_bytes)}; "
            "ask for at least the source's size"
        )
    return size


def capacity_satisfied(size_bytes: int, required_bytes: int, limit_bytes: int) -> bool:
    """Whether an existing volume of ``size_bytes`` honours a CapacityRange (idempotent CreateVolume)."""
    return size_bytes >= required_bytes and (not limit_bytes or size_bytes <= limit_bytes)


def resolve_expansion(required_bytes: int, limit_bytes: int, current_bytes: int, unit: int) -> int:
    """The new size for ControllerExpandVolume; equal to ``current_bytes`` when nothing is to be done."""
    if not required_bytes and not limit_bytes:
        raise InvalidArgument("capacity_range is required to expand a volume: set required_bytes")
    _check_range(required_bytes, limit_bytes)
    if limit_bytes and limit_bytes < current_bytes:
        raise OutOfRange(
            f"volumes cannot shrink: limit_bytes {limit_bytes} is below the current size {format_bytes(current_bytes)}"
        )
    size = max(round_up(required_bytes, unit), current_bytes)
    if limit_bytes and size > limit_bytes:
        raise OutOfRange(
            f"required_bytes {required_bytes} rounds up to {format_bytes(size)}, above limit_bytes "
            f"{limit_bytes}; raise limit_bytes or ask for a multiple of {unit}"
        )
    return size


# mkfs refuses smaller devices: xfsprogs 5.19 and later (bookworm has 6.1) print "Filesystem must be
# larger than 300MB". ext4 has no such floor worth naming.
FILESYSTEM_MINIMUM_BYTES = {"xfs": 300 * MiB}


def filesystem_floor(required_bytes: int, limit_bytes: int, fs_type: str | None) -> int:
    """A set required_bytes raised to the smallest size `fs_type` can be made on (CSI allows more than
    was asked, within limit_bytes); OUT_OF_RANGE when limit_bytes leaves no room for that file system."""
    minimum = FILESYSTEM_MINIMUM_BYTES.get(fs_type or "", 0)
    if limit_bytes and limit_bytes < minimum:
        raise OutOfRange(
            f"an {fs_type} file system needs at least {format_bytes(minimum)}, above limit_bytes {limit_bytes}; "
            f"raise the limit or choose ext4"
        )
    if not required_bytes:
        return 0  # unset: the default size (1 GiB), or the limit, both at least the floor by now
    return max(required_bytes, minimum)
