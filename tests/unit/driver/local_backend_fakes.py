"""What LocalLvmBackend's unit tests share: a node with one allowed VG (and one foreign) over an
in-memory lvm2, a clock the test moves, and plans for volumes on that VG."""

from __future__ import annotations

from localcsi.core.ids import make_ref
from localcsi.core.model import Volume
from localcsi.core.names import volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import GiB
from localcsi.driver.backend import Content, VolumePlan
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.testing.fake_lvm import FakeDevices, FakeLvm, pool, vg

NODE = "node-1"
VG = "localcsi-a"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def node_lvm() -> FakeLvm:
    """The allowed VG with a thin pool, and a VG the backend must not see."""
    fake = FakeLvm(vg(VG), vg("other-vg"))
    fake.add(pool(VG))
    return fake


def local_backend(lvm: FakeLvm, devices: FakeDevices, clock: Clock) -> LocalLvmBackend:
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
