"""What the local backend needs from lvm2, and its view of lvm2's state.

The view is one ``lvm fullreport`` of the allowed VGs, reused for ``max_age`` seconds. Callers
always see their own writes: an empty LV this process created is folded into the view (saving a
second lvm2 call per CreateVolume), and every other change drops the view. A read that raced a
change is used once but not kept; concurrent callers share one read.

Every read runs on the view's one reader thread, and the heap is trimmed after it. A report of 1000
LVs is about 650 KB of JSON, parsed into about 3 MB of transient objects: read on whichever gRPC
worker asked, each worker's malloc arena kept that much in its free lists, and the plugin's RSS grew
by megabytes per worker that ever read (docs/testing.md, "Scale on one node").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from localcsi.core.model import LAYOUTS, NEW_ATTRS, LogicalVolume, VolumeGroup
from localcsi.core.params import LvmType
from localcsi.core.placement import RAID1_LEGS, Placement
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.lvm import LvmState
from localcsi.memory import trim_heap

READER_THREAD = "lvm-report"


class LvmTool(Protocol):
    """The parts of ``localcsi.lvm.lvm.Lvm`` the local backend uses."""

    def state(self, vg: str | None = None) -> LvmState: ...
    def get_lv(self, vg: str, name: str) -> LogicalVolume | None: ...
    def create_lv(self, spec: LvSpec) -> None: ...
    def create_snapshot(
        self, vg: str, origin: str, name: str, *, cow_bytes: int | None, tags: Sequence[str] = ()
    ) -> None: ...
    def split_snapshot(self, vg: str, name: str) -> None: ...
    def remove_lv(self, vg: str, name: str, *, known: LogicalVolume | None = None) -> bool: ...
    def extend_lv(self, vg: str, name: str, size_bytes: int) -> None: ...
    def activate(self, vg: str, name: str) -> None: ...
    def deactivate(self, vg: str, name: str) -> None: ...
    def del_tags(self, vg: str, name: str, tags: Sequence[str]) -> None: ...
    def change_tags(self, vg: str, name: str, *, add: Sequence[str], delete: Sequence[str]) -> None: ...


class StateView:
    def __init__(
        self,
        lvm: LvmTool,
        vg_allowed: Callable[[str], bool],
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lvm = lvm
        self.vg_allowed = vg_allowed
        self.max_age = max_age
        self.clock = clock
        self._mutex = threading.Lock()
        self._reading = threading.Lock()
        self._state: LvmState | None = None
        self._read_at = 0.0
        self._generation = 0
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=READER_THREAD)

    def read(self) -> LvmState:
        """A new report, bypassing the cache: read on the reader thread, whoever asks."""
        return self._reader.submit(self._read).result()

    def _read(self) -> LvmState:
        state = self.lvm.state()
        allowed = LvmState(
            vgs=tuple(vg for vg in state.vgs if self.vg_allowed(vg.name)),
            lvs=tuple(lv for lv in state.lvs if self.vg_allowed(lv.vg)),
        )
        del state
        trim_heap()  # what the parse freed, before the next caller's work lands among it
        return allowed

    def _cached(self) -> LvmState | None:
        with self._mutex:
            if self._state is not None and self.clock() - self._read_at < self.max_age:
                return self._state
            return None

    def current(self) -> LvmState:
        cached = self._cached()
        if cached is not None:
            return cached
        with self._reading:
            cached = self._cached()  # read by another caller while this one waited
            if cached is not None:
                return cached
            with self._mutex:
                generation = self._generation
            state = self.read()
            with self._mutex:
                if generation == self._generation:  # no change happened meanwhile: safe to keep
                    self._state, self._read_at = state, self.clock()
            return state

    def changed(self) -> None:
        """Forget the cached view: call after (and around) every change."""
        with self._mutex:
            self._generation += 1
            self._state = None

    def created(self, lv: LogicalVolume, placement: Placement) -> None:
        """Fold an LV this process just created into the view instead of asking lvm2 again.

        lvm2 picks the PVs; the guess here is its usual pick. A wrong guess can only make a later
        lvcreate fail for room, and a failed change drops the view.
        """
        with self._mutex:
            self._generation += 1
            state = self._state
            if state is None or any(o.vg == lv.vg and o.name == lv.name for o in state.lvs):
                return
            vgs = tuple(_allocate(vg, placement) if vg.name == lv.vg else vg for vg in state.vgs)
            self._state = LvmState(vgs, (*state.lvs, lv))

    def lv(self, vg: str, name: str, state: LvmState | None = None) -> LogicalVolume | None:
        lvs = (state or self.current()).lvs
        return next((lv for lv in lvs if lv.vg == vg and lv.name == name), None)


def _allocate(vg: VolumeGroup, placement: Placement) -> VolumeGroup:
    """``vg`` after lvm2 allocated ``placement`` in it (thin LVs take nothing from the VG)."""
    size = placement.size_bytes
    free = {pv.name: pv.free_bytes for pv in vg.pvs if pv.allocatable}
    largest = sorted(free, key=lambda name: -free[name])
    taken: dict[str, int] = {}
    match placement.lvm_type:
        case LvmType.THIN:
            return vg
        case LvmType.RAID1:
            taken = {name: size + vg.extent_size for name in largest[:RAID1_LEGS]}
        case LvmType.STRIPING:
            stripes = placement.stripes or 1
            taken = {name: size // stripes for name in largest[:stripes]}
        case LvmType.LINEAR:
            left = size
            for name, room in free.items():  # lvm2 fills PVs in order
                taken[name] = min(left, room)
                left -= taken[name]
    pvs = tuple(replace(pv, free_bytes=max(0, pv.free_bytes - taken.get(pv.name, 0))) for pv in vg.pvs)
    return replace(vg, free_bytes=max(0, vg.free_bytes - sum(taken.values())), pvs=pvs)


def created_lv(vg: str, name: str, placement: Placement, tags: tuple[str, ...]) -> LogicalVolume:
    """The row ``lvs`` shows for an empty LV that lvcreate just made for ``placement``."""
    return LogicalVolume(
        vg=vg,
        name=name,
        size_bytes=placement.size_bytes,
        attr=NEW_ATTRS[placement.lvm_type],
        layout=LAYOUTS[placement.lvm_type],
        tags=tags,
        pool_lv=placement.thin_pool or "",
        created=datetime.now(tz=UTC),
    )
