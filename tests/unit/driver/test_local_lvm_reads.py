"""Standalone mode's reads (``localcsi.driver.local_lvm_reads``), through LocalLvmBackend over an in-memory
lvm2: only this node and its allowed VGs are seen, and an LV with damaged tags is skipped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from localcsi.core.ids import make_ref
from localcsi.core.model import LogicalVolume, Volume
from localcsi.core.names import volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import GiB
from localcsi.driver.backend import Content, VolumePlan
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.testing.fake_lvm import FakeDevices, FakeLvm, pool, vg

pytestmark = pytest.mark.unit

NODE = "node-1"
VG = "localcsi-a"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lvm() -> FakeLvm:
    fake = FakeLvm(vg(VG), vg("other-vg"))
    fake.add(pool(VG))
    return fake


@pytest.fixture
def devices(lvm: FakeLvm) -> FakeDevices:
    return FakeDevices(lvm.calls)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(lvm: FakeLvm, devices: FakeDevices, clock: Clock) -> LocalLvmBackend:
    return LocalLvmBackend(lvm, NODE, vg_allowed=lambda name: name.startswith("localcsi-"), devices=devices,
                           clock=clock)  # fmt: skip


def plan(name: str, size: int = GiB, lvm_type: LvmType = LvmType.LINEAR, content: Content | None = None,
         **extra: str) -> VolumePlan:  # fmt: skip
    pool_name = "localcsi-thinpool" if lvm_type is LvmType.THIN else None
    lv = volume_lv_name(name)
    placement = Placement(VG, size, lvm_type, thin_pool=pool_name)
    return VolumePlan(make_ref(NODE, VG, lv), name, placement, size, content, "ext4", "mount", extra)


def make_volume(backend: LocalLvmBackend, name: str, lvm_type: LvmType = LvmType.LINEAR) -> Volume:
    return backend.create_volume(plan(name, lvm_type=lvm_type))


def test_only_allowed_vgs_and_healthy_tags_are_seen(backend: LocalLvmBackend, lvm: FakeLvm) -> None:
    lvm.add(LogicalVolume("other-vg", volume_lv_name("x"), GiB, "-wi-a-----", tags=plan("x").tags()))
    damaged = ("localcsi.io", "localcsi.io/kind=volume")
    lvm.add(LogicalVolume(VG, volume_lv_name("bad"), GiB, "-wi-a-----", tags=damaged))
    good = make_volume(backend, "good")
    assert [v.id for v in backend.volumes()] == [good.id], "foreign VGs and damaged tags are skipped"
    assert [g.name for g in backend.storage(NODE).vgs] == [VG]
    assert backend.storage("node-2").vgs == ()
    assert backend.get_volume(replace(good.ref, node="node-2")) is None
    assert [p.name for p in backend.storage(NODE).pools] == ["localcsi-thinpool"]
