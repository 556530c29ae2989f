"""Orphans: LVs carrying our tags (a volume or a snapshot) that no LogicalVolume of this node names.
Inline ephemeral volumes are not orphans: they never have a resource (``driver/ephemeral.py``).

Each orphan is reported once with a Warning Event when first seen. Removing one is off unless
garbage collection is enabled and a grace period is set: an LV must then stay orphaned, cycle after
cycle, for the whole grace period, and the LogicalVolumes are listed again right before it is wiped
and removed (through the same code that deletes volumes). LogicalVolumes are listed after the lvm2
report is taken, so an LV made for a resource created meanwhile is never mistaken for an orphan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from localcsi.core.ephemeral import POD_DIR_KEY
from localcsi.core.errors import CoreError
from localcsi.core.model import LogicalVolume, snapshot_from_lv, volume_from_lv
from localcsi.driver.backend import tag_value
from localcsi.driver.local_backend import LocalLvmBackend

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (vg, lv)


def claimed(logical_volumes: Iterable[Mapping[str, Any]]) -> set[Key]:
    """(vg, lv) of every LogicalVolume: metadata.name is the LV name, spec.vgName its VG.

    A resource without a VG claims its name in every VG: when in doubt, nothing is an orphan.
    """
    keys: set[Key] = set()
    for obj in logical_volumes:
        name = str((obj.get("metadata") or {}).get("name") or "")
        vg = str((obj.get("spec") or {}).get("vgName") or "")
        if name:
            keys.add((vg, name))
    return keys


def _is_claimed(lv: LogicalVolume, keys: set[Key]) -> bool:
    return (lv.vg, lv.name) in keys or ("", lv.name) in keys


def _has_our_metadata(lv: LogicalVolume) -> bool:
    try:
        return lv.metadata is not None  # volumes and snapshots; thin pools and temporaries carry no kind
    except CoreError as error:  # tags edited by hand: not ours to judge, and certainly not to remove
        log.warning("%s/%s: %s", lv.vg, lv.name, error.message)
        return False


def _is_inline_ephemeral(lv: LogicalVolume) -> bool:
    """An inline ephemeral volume has no resource: the node plugin made it for a pod and collects it."""
    return tag_value(lv.tags, POD_DIR_KEY) is not None


def find_orphans(lvs: Iterable[LogicalVolume], keys: set[Key]) -> list[LogicalVolume]:
    return [lv for lv in lvs if _has_our_metadata(lv) and not _is_inline_ephemeral(lv) and not _is_claimed(lv, keys)]


@dataclass(frozen=True)
class OrphanReport:
    new: tuple[LogicalVolume, ...]  # first seen this cycle
    due: tuple[LogicalVolume, ...]  # orphaned for the whole grace period, and collection is on
    count: int


class OrphanTracker:
    def __init__(self, grace_seconds: float, collect: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_seconds = grace_seconds
        self.collect = collect and grace_seconds > 0
        self.clock = clock
        self._first_seen: dict[Key, float] = {}

    def observe(self, orphans: Sequence[LogicalVolume]) -> OrphanReport:
        now = self.clock()
        current = {(lv.vg, lv.name): lv for lv in orphans}
        # An LV that stopped being an orphan (claimed, or gone) starts its grace period afresh.
        self._first_seen = {key: seen for key, seen in self._first_seen.items() if key in current}
        new = tuple(lv for key, lv in current.items() if key not in self._first_seen)
        for key in current:
            self._first_seen.setdefault(key, now)
        due: tuple[LogicalVolume, ...] = ()
        if self.collect:
            due = tuple(lv for key, lv in current.items() if now - self._first_seen[key] >= self.grace_seconds)
        return OrphanReport(new, due, len(current))

    def forget(self, lv: LogicalVolume) -> None:
        self._first_seen.pop((lv.vg, lv.name), None)


def collect(backend: LocalLvmBackend, node: str, lv: LogicalVolume) -> bool:
    """Wipe and remove one orphan the way DeleteVolume/DeleteSnapshot would; False if it was refused."""
    try:
        volume = volume_from_lv(node, lv)
        if volume is not None:
            backend.delete_volume(volume)
            return True
        snapshot = snapshot_from_lv(node, lv)
        if snapshot is not None:
            backend.delete_snapshot(snapshot)
            return True
    except CoreError as error:
        log.warning("orphan %s/%s was not removed: %s", lv.vg, lv.name, error.message)
        return False
    log.warning("orphan %s/%s is neither a volume nor a snapshot by its name; left alone", lv.vg, lv.name)
    return False
