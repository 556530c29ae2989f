"""Volume health for NodeGetVolumeStats / ControllerGetVolume VolumeCondition, from LVM's own view."""

from __future__ import annotations

from dataclasses import dataclass

from localcsi.core.model import LogicalVolume

# Thin pool data use at which a thin volume is reported abnormal: writes may soon fail.
THIN_POOL_FULL_PERCENT = 95.0

_HEALTH_FLAGS = {
    "p": "a physical volume under it is missing (partial); reattach the disk",
    "r": "a RAID leg failed; run `lvchange --refresh` and check the disks",
    "m": "RAID legs disagree (mismatches); run `lvchange --syncaction repair`",
    "w": "",  # writemostly: a setting, not a fault
    "F": "its thin pool failed; check the pool with thin_check",
    "D": "its thin pool is out of data space; extend the pool",
    "M": "its thin pool metadata is read-only; extend and repair the pool metadata",
    "X": "lvm2 cannot determine its state",
}


@dataclass(frozen=True)
class Condition:
    abnormal: bool
    message: str


HEALTHY = Condition(False, "volume is healthy")


def volume_condition(lv: LogicalVolume, pool: LogicalVolume | None = None) -> Condition:
    """Health of a volume LV; ``pool`` is its thin pool's row, when the volume is thin."""
    problems: list[str] = []
    flag_message = _HEALTH_FLAGS.get(lv.health_flag, f"lvm2 reports health {lv.health_flag!r}")
    if lv.health_flag and flag_message:
        problems.append(flag_message)
    if lv.health_status and not problems:
        problems.append(f"lvm2 reports health status {lv.health_status!r}")
    if lv.is_invalid_snapshot:
        problems.append("the copy-on-write snapshot overflowed and is invalid; its content is lost")
    if pool is not None:
        pool_flag = _HEALTH_FLAGS.get(pool.health_flag, "")
        if pool.health_flag and pool_flag and pool_flag not in problems:
            problems.append(pool_flag)
        elif pool.data_percent is not None and pool.data_percent >= THIN_POOL_FULL_PERCENT:
            problems.append(
                f"thin pool {pool.vg}/{pool.name} is {pool.data_percent:.1f}% full; extend it before writes fail"
            )
        if pool.metadata_percent is not None and pool.metadata_percent >= THIN_POOL_FULL_PERCENT:
            problems.append(
                f"thin pool {pool.vg}/{pool.name} metadata is {pool.metadata_percent:.1f}% full; "
                "extend it with `lvextend --poolmetadatasize`"
            )
    if not problems:
        return HEALTHY
    return Condition(True, f"{lv.vg}/{lv.name}: " + "; ".join(problems))
