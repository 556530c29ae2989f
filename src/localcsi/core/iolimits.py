"""Per-volume IO limits: the parameters as given, and the throttle they resolve to. Pure values.

``bps`` and ``iops`` (the seeds' names) limit reads and writes alike; ``readBps``, ``writeBps``,
``readIops`` and ``writeIops`` override them for one direction. ``0`` means "no limit", so that a
VolumeAttributesClass can lift a limit: ControllerModifyVolume changes only the keys it is given
(CSI: "SPs MUST NOT modify volumes based on the absence of keys").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from localcsi.core.errors import InvalidArgument
from localcsi.core.sizes import parse_quantity

BPS = "bps"
IOPS = "iops"
READ_BPS = "readBps"
WRITE_BPS = "writeBps"
READ_IOPS = "readIops"
WRITE_IOPS = "writeIops"
IO_LIMIT_KEYS = (BPS, IOPS, READ_BPS, WRITE_BPS, READ_IOPS, WRITE_IOPS)
# The kernel takes u64 limits; parse_quantity's ceiling, 2**63 - 1, keeps them signed 64-bit integers too.
MAX_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class Throttle:
    """The limits to enforce on one device, per direction; None: unlimited."""

    read_bps: int | None = None
    write_bps: int | None = None
    read_iops: int | None = None
    write_iops: int | None = None

    @property
    def unlimited(self) -> bool:
        return self == UNLIMITED

    def __str__(self) -> str:
        parts = [
            f"{name}={value}"
            for name, value in (
                ("rbps", self.read_bps),
                ("wbps", self.write_bps),
                ("riops", self.read_iops),
                ("wiops", self.write_iops),
            )
            if value is not None
        ]
        return " ".join(parts) or "unlimited"


UNLIMITED = Throttle()


@dataclass(frozen=True)
class IoLimits:
    """Limit keys as given (``0``: explicitly none), sorted by key; an absent key is simply not set."""

    settings: tuple[tuple[str, int], ...] = ()

    def get(self, key: str) -> int | None:
        return dict(self.settings).get(key)

    def merged(self, changes: IoLimits) -> IoLimits:
        """These limits with ``changes`` applied: keys in ``changes`` win, the others are kept."""
        combined = dict(self.settings) | dict(changes.settings)
        return IoLimits(tuple(sorted(combined.items())))

    def as_strings(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.settings}

    def throttle(self) -> Throttle:
        def pick(override: str, base: str) -> int | None:
            value = self.get(override)
            if value is None:
                value = self.get(base)
            return value or None  # 0: no limit

        return Throttle(
            read_bps=pick(READ_BPS, BPS),
            write_bps=pick(WRITE_BPS, BPS),
            read_iops=pick(READ_IOPS, IOPS),
            write_iops=pick(WRITE_IOPS, IOPS),
        )

    def __bool__(self) -> bool:
        return bool(self.settings)


NO_LIMITS = IoLimits()


def parse_io_limits(params: Mapping[str, str]) -> IoLimits:
    """The IO limit keys of ``params`` (others are ignored here); a bad value is INVALID_ARGUMENT."""
    return IoLimits(
        tuple(
            sorted((key, parse_quantity(params[key], key=f"parameter {key}")) for key in IO_LIMIT_KEYS if key in params)
        )
    )


def parse_mutable_parameters(params: Mapping[str, str]) -> IoLimits:
    """``mutable_parameters`` of CreateVolume or ControllerModifyVolume: only IO limits can change."""
    unknown = sorted(key for key in params if key not in IO_LIMIT_KEYS)
    if unknown:
        raise InvalidArgument(
            f"mutable parameters {unknown} are not supported; the ones a VolumeAttributesClass may set are "
            f"{', '.join(IO_LIMIT_KEYS)}"
        )
    return parse_io_limits(params)


def io_limits_from_fields(fields: Iterable[tuple[str, str]]) -> IoLimits:
    """Limits read back from stored ``key=value`` fields; values that are not byte counts are skipped."""
    found = {key: int(value) for key, value in fields if key in IO_LIMIT_KEYS and value.isdigit()}
    return IoLimits(tuple(sorted((key, min(value, MAX_LIMIT)) for key, value in found.items())))
