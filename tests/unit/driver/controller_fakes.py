"""An in-memory Backend for the controller driver's unit tests.

LVs are core ``LogicalVolume`` values carrying the tags a plan asks for, so volumes and snapshots
are read back through the same core functions as real ones. Free space shrinks as LVs are made.
"""

from __future__ import annotations

from dataclasses import replace

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import FailedPrecondition, ResourceExhausted
from localcsi.core.health import HEALTHY, Condition
from localcsi.core.ids import LvRef
from localcsi.core.iolimits import IoLimits
from localcsi.core.model import (
    LAYOUTS,
    LogicalVolume,
    PhysicalVolume,
    Snapshot,
    ThinPool,
    Volume,
    VolumeGroup,
    snapshot_from_lv,
    volume_from_lv,
)
from localcsi.core.params import LvmType
from localcsi.core.sizes import GiB, MiB
from localcsi.driver.backend import (
    CREATING_TAG,
    Fill,
    NodeStorage,
    SnapshotPlan,
    VolumePlan,
    io_limit_tag_changes,
)
from localcsi.testing.fake_lvm import Killed

NODE = "node-1"
EXTENT = 4 * MiB
POOL = "localcsi-thinpool"
MOUNT = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)
BLOCK = Capability("SINGLE_NODE_WRITER", AccessType.BLOCK)


def make_vg(name: str, *pv_gib: int) -> VolumeGroup:
    pvs = tuple(PhysicalVolume(f"/dev/{name}-pv{i}", name, size * GiB, size * GiB) for i, size in enumerate(pv_gib))
    total = sum(pv.size_bytes for pv in pvs)
    return VolumeGroup(name, total, total, EXTENT, len(pvs), pvs=pvs)


class FakeBackend:
    def __init__(self, *vgs: VolumeGroup, pool_in: str | None = None, pool_bytes: int = 4 * GiB) -> None:
        self.vgs = {vg.name: vg for vg in vgs}
        self.pool = (pool_in, POOL, pool_bytes) if pool_in else None
        self.lvs: dict[tuple[str, str], LogicalVolume] = {}
        self.plans: list[VolumePlan] = []
        self.deleted: list[str] = []
        self.kill_during_fill = False
        self.taken_meanwhile: str | None = None  # a VG another creator fills just before lvcreate runs
        self.conditions: dict[str, Condition] = {}

    # -- state ---------------------------------------------------------------------------------

    def _used(self, vg: str) -> int:
        thick = sum(lv.size_bytes for lv in self.lvs.values() if lv.vg == vg and not lv.is_thin_volume)
        pool = self.pool[2] if self.pool and self.pool[0] == vg else 0
        return thick + pool

    def _vg_now(self, vg: VolumeGroup) -> VolumeGroup:
        used = self._used(vg.name)
        pvs = []
        for pv in vg.pvs:  # allocate from the first PV on, like lvm2's normal policy
            taken = min(pv.size_bytes, used)
            used -= taken
            pvs.append(replace(pv, free_bytes=pv.size_bytes - taken))
        return replace(vg, free_bytes=sum(pv.free_bytes for pv in pvs), pvs=tuple(pvs))

    def nodes(self) -> tuple[str, ...]:
        return (NODE,)

    def storage(self, node: str) -> NodeStorage:
        if node != NODE:
            return NodeStorage(node, (), ())
        pools: tuple[ThinPool, ...] = ()
        if self.pool:
            vg, name, size = self.pool
            virtual = sum(lv.size_bytes for lv in self.lvs.values() if lv.pool_lv == name and lv.vg == vg)
            pools = (ThinPool(vg, name, size, 0.0, 0.0, virtual),)
        return NodeStorage(node, tuple(self._vg_now(vg) for vg in self.vgs.values()), pools)

    def volumes(self) -> list[Volume]:
        return [v for lv in self.lvs.values() if (v := volume_from_lv(NODE, lv)) is not None]

    def snapshots(self) -> list[Snapshot]:
        return [s for lv in self.lvs.values() if (s := snapshot_from_lv(NODE, lv)) is not None]

    def find_volume(self, lv_name: str) -> Volume | None:
        return next((v for v in self.volumes() if v.ref.lv == lv_name), None)

    def find_snapshot(self, lv_name: str) -> Snapshot | None:
        return next((s for s in self.snapshots() if s.ref.lv == lv_name), None)

    def get_volume(self, ref: LvRef) -> Volume | None:
        lv = self.lvs.get((ref.vg, ref.lv)) if ref.node == NODE else None
        return volume_from_lv(NODE, lv) if lv else None

    def get_snapshot(self, ref: LvRef) -> Snapshot | None:
        lv = self.lvs.get((ref.vg, ref.lv)) if ref.node == NODE else None
        return snapshot_from_lv(NODE, lv) if lv else None

    def condition(self, volume: Volume) -> Condition:
        return self.conditions.get(volume.id, HEALTHY)

    # -- changes -------------------------------------------------------------------------------

    def _volume(self, vg: str, name: str) -> Volume:
        volume = volume_from_lv(NODE, self.lvs[(vg, name)])
        assert volume is not None
        return volume

    def create_volume(self, plan: VolumePlan) -> Volume:
        self.plans.append(plan)
        if plan.ref.vg == self.taken_meanwhile:
            group = self.vgs[plan.ref.vg]
            left = group.free_bytes - self._used(group.name)
            self.lvs[(group.name, "someone-elses")] = LogicalVolume(group.name, "someone-elses", left, "-wi-a-----")
            self.taken_meanwhile = None
            raise ResourceExhausted(f'Volume group "{plan.ref.vg}" has insufficient free space')
        key = (plan.ref.vg, plan.ref.lv)
        if key not in self.lvs:
            thin = plan.placement.lvm_type is LvmType.THIN
            origin = plan.content.lv.lv if plan.fill is Fill.THIN_SNAPSHOT and plan.content else ""
            self.lvs[key] = LogicalVolume(
                vg=plan.ref.vg,
                name=plan.ref.lv,
                size_bytes=plan.placement.size_bytes,
                attr="Vwi-a-tz--" if thin else "-wi-a-----",
                layout=LAYOUTS[plan.placement.lvm_type],
                tags=(*plan.tags(), CREATING_TAG) if plan.content else plan.tags(),
                pool_lv=plan.placement.thin_pool or "",
                origin=origin,
            )
        if self.kill_during_fill and plan.content is not None:
            raise Killed(f"killed while filling {plan.ref}")
        lv = self.lvs[key]
        tags = tuple(tag for tag in lv.tags if tag != CREATING_TAG)
        self.lvs[key] = replace(lv, tags=tags, size_bytes=max(lv.size_bytes, plan.placement.size_bytes))
        return self._volume(*key)

    def delete_volume(self, volume: Volume) -> None:
        if any(lv.origin == volume.ref.lv and lv.is_cow_snapshot for lv in self.lvs.values()):
            raise FailedPrecondition(f"{volume.id} has thick snapshots")
        del self.lvs[(volume.ref.vg, volume.ref.lv)]
        self.deleted.append(volume.id)

    def expand_volume(self, volume: Volume, size_bytes: int) -> Volume:
        key = (volume.ref.vg, volume.ref.lv)
        self.lvs[key] = replace(self.lvs[key], size_bytes=size_bytes)
        return self._volume(*key)

    def set_io_limits(self, volume: Volume, limits: IoLimits) -> Volume:
        key = (volume.ref.vg, volume.ref.lv)
        add, delete = io_limit_tag_changes(volume, limits)
        kept = tuple(tag for tag in self.lvs[key].tags if tag not in delete)
        self.lvs[key] = replace(self.lvs[key], tags=(*kept, *add))
        return self._volume(*key)

    def create_snapshot(self, plan: SnapshotPlan) -> Snapshot:
        thin = plan.cow_bytes is None
        origin = plan.source.lv
        self.lvs[(plan.ref.vg, plan.ref.lv)] = LogicalVolume(
            vg=plan.ref.vg,
            name=plan.ref.lv,
            size_bytes=origin.size_bytes if thin else plan.cow_bytes or 0,
            attr="Vwi-a-tz--" if thin else "swi-a-s---",
            layout=LAYOUTS[LvmType.THIN] if thin else ("linear",),
            tags=plan.tags(),
            pool_lv=origin.pool_lv,
            origin=origin.name,
            origin_size_bytes=origin.size_bytes,
        )
        if not thin:
            key = (origin.vg, origin.name)
            self.lvs[key] = replace(self.lvs[key], attr="o" + self.lvs[key].attr[1:])
        snapshot = snapshot_from_lv(NODE, self.lvs[(plan.ref.vg, plan.ref.lv)])
        assert snapshot is not None
        return snapshot

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        del self.lvs[(snapshot.ref.vg, snapshot.ref.lv)]
        self.deleted.append(snapshot.id)


THIN = {"lvmType": "thin"}  # StorageClass parameters for a thin volume in two_vg_backend's pool


def two_vg_backend() -> FakeBackend:
    """The controller tests' node: localcsi-a on two 4 GiB PVs with the thin pool, localcsi-b on one of 2 GiB."""
    return FakeBackend(make_vg("localcsi-a", 4, 4), make_vg("localcsi-b", 2), pool_in="localcsi-a")
