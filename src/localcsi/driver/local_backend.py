"""Standalone mode's backend: plans carried out with lvm2 on this node, state read back from lvm2.

State comes from one ``lvm fullreport`` of the allowed VGs, reused for ``max_age`` seconds and
dropped at every change made through this backend, so a client sees its own writes at once.

Crash safety: an LV that gets content (restore, clone) is created with CREATING_TAG, filled, and
only then untagged; executing the plan again finds the tagged LV and redoes the fill. Data safety:
thick LVs, thick snapshots' COW stores and LVs in thin pools that do not zero new blocks are
zeroed before removal (thin pools made with ``--zero y`` hand out zeroed blocks by themselves).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction

from localcsi.core.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    ResourceExhausted,
)
from localcsi.core.ids import LvRef
from localcsi.core.iolimits import IoLimits
from localcsi.core.model import LogicalVolume, Snapshot, Volume, thin_pools
from localcsi.core.names import VOLUME_LV_PREFIX
from localcsi.core.params import LvmType
from localcsi.core.sizes import format_bytes, round_down
from localcsi.core.snapshots import full_cow_bytes
from localcsi.core.tags import OWNER_TAG, SourceKind
from localcsi.driver.backend import (
    CREATING_TAG,
    OVERPROVISIONING_KEY,
    Fill,
    SnapshotPlan,
    VolumePlan,
    io_limit_tag_changes,
)
from localcsi.driver.blockdev import BlockDevices, LocalBlockDevices
from localcsi.driver.local_lvm_reads import LocalLvmReads
from localcsi.driver.lvm_state import LvmTool, StateView, created_lv
from localcsi.lvm.commands import LvSpec

log = logging.getLogger(__name__)

# A clone copies from a temporary snapshot of its source, named after the clone's LV.
CLONE_SNAPSHOT_PREFIX = "clone-"
_POOL_ZEROES = "z"  # lv_attr[7] of a thin pool that zeroes newly provisioned blocks


def clone_snapshot_name(volume_lv: str) -> str:
    return CLONE_SNAPSHOT_PREFIX + volume_lv.removeprefix(VOLUME_LV_PREFIX)


class _NoSnapshotRoom(ResourceExhausted):
    """A thick clone's temporary snapshot found no free extent: refused before any byte was copied.
    Placement keeps an extent free for it; another create can still take it in between."""


class LocalLvmBackend(LocalLvmReads):
    def __init__(
        self,
        lvm: LvmTool,
        node: str,
        *,
        vg_allowed: Callable[[str], bool] = lambda _: True,
        devices: BlockDevices | None = None,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(node, vg_allowed, StateView(lvm, vg_allowed, max_age, clock))
        self.lvm = lvm
        self.devices = devices if devices is not None else LocalBlockDevices()
        self._mutex = threading.Lock()
        self._vg_locks: dict[str, threading.Lock] = {}

    # -- state -------------------------------------------------------------------------------

    def _vg_lock(self, vg: str) -> threading.Lock:
        with self._mutex:
            return self._vg_locks.setdefault(vg, threading.Lock())

    def _fresh_lv(self, vg: str, name: str) -> LogicalVolume:
        lv = self.lvm.get_lv(vg, name)
        if lv is None:
            raise Internal(f"{vg}/{name} was just changed but lvs does not show it; check `lvs {vg}`")
        return lv

    # -- volumes -----------------------------------------------------------------------------

    def create_volume(self, plan: VolumePlan) -> Volume:
        vg, name = plan.ref.vg, plan.ref.lv
        started = time.monotonic()
        lv = self.view.lv(vg, name)
        made_here = lv is None
        if lv is None:
            lv = self._create_lv(plan)
        if CREATING_TAG in lv.tags:
            try:
                self._fill(plan, lv)
            except _NoSnapshotRoom:
                if made_here:  # nothing was written to it: a refused request leaves nothing behind
                    self._remove_unwritten(lv)
                raise
            self.lvm.del_tags(vg, name, [CREATING_TAG])
            self.view.changed()
            lv = self._fresh_lv(vg, name)
        volume = self._volume(lv)
        if volume is None:
            raise Internal(f"{vg}/{name} was created but does not read back as a volume: {lv.tags}")
        log.info("volume %s (%s) ready: %s %s in %.2fs", plan.name, volume.id, plan.placement.lvm_type,
                 format_bytes(volume.size_bytes), time.monotonic() - started)  # fmt: skip
        return volume

    def _create_lv(self, plan: VolumePlan) -> LogicalVolume:
        vg, name = plan.ref.vg, plan.ref.lv
        tags = plan.tags() if plan.content is None else (*plan.tags(), CREATING_TAG)
        if plan.content is not None and plan.fill is Fill.THIN_SNAPSHOT:
            _same_vg(plan.ref, plan.content.lv, "a volume filled by a thin snapshot")
        try:
            if plan.fill is Fill.THIN_SNAPSHOT:
                assert plan.content is not None
                self.lvm.create_snapshot(vg, plan.content.lv.lv, name, cow_bytes=None, tags=tags)
            elif plan.placement.lvm_type is LvmType.THIN:
                with self._vg_lock(vg):  # placement and lvcreate as one step: the ratio must hold
                    self._check_thin_room(plan)
                    self.lvm.create_lv(LvSpec.for_placement(plan.placement, name, tags))
            else:
                self.lvm.create_lv(LvSpec.for_placement(plan.placement, name, tags))
        except AlreadyExists:
            self.view.changed()  # made meanwhile by another process: a retry re-checks it
            raise Aborted(f"{vg}/{name} appeared while it was being created; retry") from None
        except BaseException:
            self.view.changed()
            raise
        if plan.content is not None:
            self.view.changed()
            return self._fresh_lv(vg, name)
        lv = created_lv(plan.ref.vg, plan.ref.lv, plan.placement, tags)
        self.view.created(lv, plan.placement)
        return lv

    def _check_thin_room(self, plan: VolumePlan) -> None:
        state = self.view.current()  # every thin LV made here is in the view: the VG lock is held
        pool = next(
            (p for p in thin_pools(state.lvs) if p.vg == plan.ref.vg and p.name == plan.placement.thin_pool),
            None,
        )
        if pool is None:
            raise ResourceExhausted(f"thin pool {plan.ref.vg}/{plan.placement.thin_pool} does not exist")
        ratio = Fraction(plan.extra.get(OVERPROVISIONING_KEY, "1"))
        room = pool.size_bytes * ratio.numerator // ratio.denominator - pool.virtual_bytes
        if plan.placement.size_bytes > room:
            raise ResourceExhausted(
                f"thin pool {pool.vg}/{pool.name} has {format_bytes(max(room, 0))} of virtual room left at "
                f"overprovisioning ratio {float(ratio):g}; {format_bytes(plan.placement.size_bytes)} wanted"
            )

    def _fill(self, plan: VolumePlan, lv: LogicalVolume) -> None:
        content = plan.content
        if content is None:
            return
        if content.fill is Fill.THIN_SNAPSHOT:
            if lv.size_bytes < plan.placement.size_bytes:
                self.lvm.extend_lv(lv.vg, lv.name, plan.placement.size_bytes)
            self._activate(lv)
            return
        self._activate(lv)
        if content.source.kind is SourceKind.SNAPSHOT:
            source = self._fresh_lv(content.lv.vg, content.lv.lv)
            self._activate(source)
            self.devices.copy(source.device_path, lv.device_path, content.size_bytes)
            return
        temporary = self._clone_snapshot(plan)
        try:
            self.devices.copy(temporary.device_path, lv.device_path, content.size_bytes)
        finally:
            self._discard_snapshot(temporary)

    def _clone_snapshot(self, plan: VolumePlan) -> LogicalVolume:
        """A fresh point-in-time snapshot of a clone's source volume, to copy from."""
        assert plan.content is not None
        vg, origin = plan.content.lv.vg, plan.content.lv.lv
        name = clone_snapshot_name(plan.ref.lv)
        leftover = self.view.lv(vg, name, self.view.read())
        if leftover is not None:  # from an interrupted attempt: its copy may have overflowed
            self._discard_snapshot(leftover)
        cow: int | None = None
        if not plan.content.thin:
            group = next(g for g in self.view.read().vgs if g.name == vg)
            cow = min(full_cow_bytes(plan.content.size_bytes, group.extent_size),
                      round_down(group.free_bytes, group.extent_size))  # fmt: skip
            if cow < group.extent_size:
                raise _NoSnapshotRoom(
                    f"cloning {vg}/{origin} needs a temporary snapshot, and {vg} has no free extent left"
                )
        try:
            self.lvm.create_snapshot(vg, origin, name, cow_bytes=cow, tags=[OWNER_TAG])
        finally:
            self.view.changed()
        temporary = self._fresh_lv(vg, name)
        self._activate(temporary)
        return temporary

    def _remove_unwritten(self, lv: LogicalVolume) -> None:
        """Remove an LV this request made and wrote nothing to: its extents hold what they held before."""
        try:
            self.lvm.remove_lv(lv.vg, lv.name, known=lv)
        finally:
            self.view.changed()

    def _activate(self, lv: LogicalVolume) -> None:
        if not lv.is_active:
            self.lvm.activate(lv.vg, lv.name)

    def _needs_wipe(self, lv: LogicalVolume) -> bool:
        if not lv.is_thin_volume:
            return True
        pool = self.view.lv(lv.vg, lv.pool_lv)
        return pool is None or pool.attr[7:8] != _POOL_ZEROES

    def _wipe_and_remove(self, lv: LogicalVolume) -> None:
        if lv.is_open:
            raise FailedPrecondition(f"{lv.vg}/{lv.name} is open (mounted or in use); unpublish it first")
        if self._needs_wipe(lv):
            self._activate(lv)
            self.devices.wipe(lv.device_path)
        try:
            self.lvm.remove_lv(lv.vg, lv.name, known=lv)
        finally:
            self.view.changed()

    def delete_volume(self, volume: Volume) -> None:
        lv = self._fresh_lv(volume.ref.vg, volume.ref.lv)  # not the view: open state and origins matter here
        leftovers = self._leftover_clone_snapshots(lv)
        for leftover in leftovers:
            self._discard_snapshot(leftover)
        if leftovers:
            lv = self._fresh_lv(lv.vg, lv.name)
        own = clone_snapshot_name(lv.name)  # in its source's VG, left by an interrupted clone into it
        for leftover in [o for o in self.view.current().lvs if o.name == own]:
            self._discard_snapshot(leftover)
        if lv.is_cow_origin:
            snaps = sorted(o.name for o in self.view.current().lvs if o.vg == lv.vg and o.origin == lv.name)
            raise FailedPrecondition(
                f"volume {volume.id} has thick snapshots {snaps}: they live on it; delete them first"
            )
        self._wipe_and_remove(lv)
        log.info("volume %s (%s) wiped and removed", volume.name, volume.id)

    def _leftover_clone_snapshots(self, origin: LogicalVolume) -> list[LogicalVolume]:
        """Temporary snapshots of ``origin`` left by interrupted clones (the driver holds it now)."""
        return [
            lv
            for lv in self.view.current().lvs
            if lv.vg == origin.vg and lv.origin == origin.name and lv.name.startswith(CLONE_SNAPSHOT_PREFIX)
        ]

    def expand_volume(self, volume: Volume, size_bytes: int) -> Volume:
        vg, name = volume.ref.vg, volume.ref.lv
        lv = self._fresh_lv(vg, name)
        try:
            if not lv.is_cow_origin:
                self.lvm.extend_lv(vg, name, size_bytes)
            elif lv.is_open:
                raise FailedPrecondition(
                    f"volume {volume.id} has thick snapshots, and lvm2 grows such a volume only while it "
                    "is not in use: unpublish it, or delete its snapshots, then retry"
                )
            else:
                self.lvm.deactivate(vg, name)
                try:
                    self.lvm.extend_lv(vg, name, size_bytes)
                finally:
                    self.lvm.activate(vg, name)
        finally:
            self.view.changed()
        expanded = self._volume(self._fresh_lv(vg, name))
        if expanded is None:
            raise Internal(f"{volume.id} no longer reads back as a volume after lvextend")
        log.info("volume %s expanded to %s", volume.id, format_bytes(expanded.size_bytes))
        return expanded

    def set_io_limits(self, volume: Volume, limits: IoLimits) -> Volume:
        add, delete = io_limit_tag_changes(volume, limits)
        if not add and not delete:
            return volume
        vg, name = volume.ref.vg, volume.ref.lv
        try:
            self.lvm.change_tags(vg, name, add=add, delete=delete)
        finally:
            self.view.changed()
        changed = self._volume(self._fresh_lv(vg, name))
        if changed is None:
            raise Internal(f"{volume.id} no longer reads back as a volume after lvchange")
        log.info("volume %s IO limits now %s", volume.id, limits.throttle())
        return changed

    # -- snapshots ---------------------------------------------------------------------------

    def create_snapshot(self, plan: SnapshotPlan) -> Snapshot:
        vg, name = plan.ref.vg, plan.ref.lv
        _same_vg(plan.ref, plan.source.ref, "a snapshot")
        if self.view.lv(vg, name) is None:
            try:
                self.lvm.create_snapshot(vg, plan.source.ref.lv, name, cow_bytes=plan.cow_bytes, tags=plan.tags())
            finally:
                self.view.changed()
        snapshot = self._snapshot(self._fresh_lv(vg, name))
        if snapshot is None:
            raise Internal(f"{vg}/{name} was created but does not read back as a snapshot")
        kind = "thin" if plan.cow_bytes is None else f"thick, {format_bytes(plan.cow_bytes)} COW"
        log.info("snapshot %s (%s) of %s ready (%s)", plan.name, snapshot.id, plan.source.id, kind)
        return snapshot

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        self._discard_snapshot(self._fresh_lv(snapshot.ref.vg, snapshot.ref.lv))
        log.info("snapshot %s (%s) removed", snapshot.name, snapshot.id)

    def _discard_snapshot(self, lv: LogicalVolume) -> None:
        """Remove a snapshot LV; a thick one's COW store (copies of origin data) is wiped first."""
        if lv.is_cow_snapshot:
            try:
                self.lvm.split_snapshot(lv.vg, lv.name)
            finally:
                self.view.changed()
            lv = self._fresh_lv(lv.vg, lv.name)
        self._wipe_and_remove(lv)


def _same_vg(target: LvRef, source: LvRef, what: str) -> None:
    """lvcreate --snapshot makes the new LV in its origin's VG, on its origin's node: a plan naming another
    VG would fail in lvm2 on every retry, or snapshot an LV of the same name that is not the source."""
    if (target.node, target.vg) != (source.node, source.vg):
        raise InvalidArgument(
            f"{what} is made beside its source: {target.node}/{target.vg}/{target.lv} cannot be made from "
            f"{source.node}/{source.vg}/{source.lv}"
        )
