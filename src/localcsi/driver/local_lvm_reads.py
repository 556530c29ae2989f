"""Standalone mode's reads: this node's volumes, snapshots and room as the shared lvm view shows them.

Only this node and its allowed VGs are seen; an LV whose tags do not read back is skipped with a
warning, so that one damaged LV does not hide all the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from localcsi.core.errors import Internal
from localcsi.core.exclusive import is_exclusive_group
from localcsi.core.health import Condition, volume_condition
from localcsi.core.ids import LvRef
from localcsi.core.model import LogicalVolume, Snapshot, Volume, snapshot_from_lv, thin_pools, volume_from_lv
from localcsi.driver.backend import NodeStorage
from localcsi.driver.lvm_state import StateView

log = logging.getLogger(__name__)


class LocalLvmReads:
    """``LocalLvmBackend``'s reads, from its ``StateView`` of lvm2."""

    def __init__(self, node: str, vg_allowed: Callable[[str], bool], view: StateView) -> None:
        self.node = node
        self.vg_allowed = vg_allowed
        self.view = view

    def _volume(self, lv: LogicalVolume) -> Volume | None:
        try:
            return volume_from_lv(self.node, lv)
        except Internal as exc:  # one LV with damaged tags must not hide all the others
            log.warning("ignoring %s/%s: %s", lv.vg, lv.name, exc.message)
            return None

    def _snapshot(self, lv: LogicalVolume) -> Snapshot | None:
        try:
            return snapshot_from_lv(self.node, lv)
        except Internal as exc:
            log.warning("ignoring %s/%s: %s", lv.vg, lv.name, exc.message)
            return None

    def _ours(self, ref: LvRef) -> bool:
        return ref.node == self.node and self.vg_allowed(ref.vg)

    # -- reads -------------------------------------------------------------------------------

    def nodes(self) -> tuple[str, ...]:
        return (self.node,)

    def storage(self, node: str) -> NodeStorage:
        if node != self.node:
            return NodeStorage(node, (), ())
        state = self.view.current()
        # A Device volume's VG is a whole disk taken by one volume: never room for LVM volumes.
        vgs = tuple(vg for vg in state.vgs if not is_exclusive_group(vg.name))
        return NodeStorage(node, vgs, tuple(p for p in thin_pools(state.lvs) if not is_exclusive_group(p.vg)))

    def volumes(self) -> list[Volume]:
        return [volume for lv in self.view.current().lvs if (volume := self._volume(lv)) is not None]

    def snapshots(self) -> list[Snapshot]:
        return [snap for lv in self.view.current().lvs if (snap := self._snapshot(lv)) is not None]

    def find_volume(self, lv_name: str) -> Volume | None:
        lvs = (lv for lv in self.view.current().lvs if lv.name == lv_name)
        return next((volume for lv in lvs if (volume := self._volume(lv)) is not None), None)

    def find_snapshot(self, lv_name: str) -> Snapshot | None:
        lvs = (lv for lv in self.view.current().lvs if lv.name == lv_name)
        return next((snap for lv in lvs if (snap := self._snapshot(lv)) is not None), None)

    def get_volume(self, ref: LvRef) -> Volume | None:
        lv = self.view.lv(ref.vg, ref.lv) if self._ours(ref) else None
        return self._volume(lv) if lv is not None else None

    def get_snapshot(self, ref: LvRef) -> Snapshot | None:
        lv = self.view.lv(ref.vg, ref.lv) if self._ours(ref) else None
        return self._snapshot(lv) if lv is not None else None

    def condition(self, volume: Volume) -> Condition:
        pool = self.view.lv(volume.ref.vg, volume.lv.pool_lv) if volume.lv.pool_lv else None
        return volume_condition(volume.lv, pool)
