"""In-memory stand-ins for lvm2 and the block devices, for LocalLvmBackend's unit tests.

They follow what real lvm2 was seen to do in the node VM: lv_attr letters for thin, COW snapshots
and their origins, split snapshots becoming plain LVs, and removal refused for a COW origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from localcsi.core.errors import AlreadyExists, FailedPrecondition, NotFound
from localcsi.core.model import LAYOUTS, LogicalVolume, PhysicalVolume, VolumeGroup
from localcsi.core.params import LvmType
from localcsi.core.sizes import GiB, MiB
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.lvm import LvmState

EXTENT = 4 * MiB


class Killed(Exception):
    """The process died mid-operation (kill -9): nothing after this point ran."""


def vg(name: str, gib: int = 8) -> VolumeGroup:
    pv = PhysicalVolume(f"/dev/{name}0", name, gib * GiB, gib * GiB)
    return VolumeGroup(name, gib * GiB, gib * GiB, EXTENT, 1, pvs=(pv,))


def pool(vg: str, name: str = "localcsi-thinpool", size: int = 4 * GiB, zeroing: bool = True) -> LogicalVolume:
    attr = "twi-aotz--" if zeroing else "twi-aot---"
    return LogicalVolume(vg, name, size, attr, layout=("thin", "pool"), tags=("localcsi.io",))


class FakeLvm:
    def __init__(self, *vgs: VolumeGroup) -> None:
        self.vgs = list(vgs)
        self.lvs: dict[tuple[str, str], LogicalVolume] = {}
        self.calls: list[tuple[str, ...]] = []
        self.state_reads = 0

    def add(self, lv: LogicalVolume) -> LogicalVolume:
        self.lvs[(lv.vg, lv.name)] = lv
        return lv

    def _set_attr(self, key: tuple[str, str], index: int, letter: str) -> None:
        lv = self.lvs[key]
        self.lvs[key] = replace(lv, attr=lv.attr[:index] + letter + lv.attr[index + 1 :])

    def state(self, vg: str | None = None) -> LvmState:
        self.state_reads += 1
        return LvmState(tuple(self.vgs), tuple(self.lvs.values()))

    def get_lv(self, vg: str, name: str) -> LogicalVolume | None:
        return self.lvs.get((vg, name))

    def create_lv(self, spec: LvSpec) -> None:
        self.calls.append(("create_lv", spec.vg, spec.name, str(spec.lvm_type)))
        if (spec.vg, spec.name) in self.lvs:
            raise AlreadyExists(f'Logical Volume "{spec.name}" already exists in volume group')
        thin = spec.lvm_type is LvmType.THIN
        self.add(
            LogicalVolume(
                spec.vg,
                spec.name,
                spec.size_bytes,
                "Vwi-a-tz--" if thin else "-wi-a-----",
                layout=LAYOUTS[spec.lvm_type],
                tags=tuple(spec.tags),
                pool_lv=spec.thin_pool or "",
            )
        )

    def create_snapshot(
        self, vg: str, origin: str, name: str, *, cow_bytes: int | None, tags: Sequence[str] = ()
    ) -> None:
        self.calls.append(("create_snapshot", vg, origin, name, str(cow_bytes)))
        source = self.lvs[(vg, origin)]
        if cow_bytes is None:
            lv = LogicalVolume(vg, name, source.size_bytes, "Vwi-a-tz--", layout=("thin", "sparse"),
                               tags=tuple(tags), pool_lv=source.pool_lv, origin=origin)  # fmt: skip
        else:
            lv = LogicalVolume(vg, name, cow_bytes, "swi-a-s---", layout=("linear",), tags=tuple(tags),
                               origin=origin, origin_size_bytes=source.size_bytes)  # fmt: skip
            self._set_attr((vg, origin), 0, "o")
        self.add(lv)

    def _restore_origin(self, vg: str, origin: str) -> None:
        still = any(lv.origin == origin and lv.is_cow_snapshot for lv in self.lvs.values() if lv.vg == vg)
        if (vg, origin) in self.lvs and not still:
            self._set_attr((vg, origin), 0, "-")

    def split_snapshot(self, vg: str, name: str) -> None:
        self.calls.append(("split_snapshot", vg, name))
        lv = self.lvs[(vg, name)]
        self.lvs[(vg, name)] = replace(lv, attr="-wi-a-----", origin="", origin_size_bytes=None)
        self._restore_origin(vg, lv.origin)

    def remove_lv(self, vg: str, name: str, *, known: LogicalVolume | None = None) -> bool:
        self.calls.append(("remove_lv", vg, name))
        lv = self.lvs.get((vg, name))
        if lv is None:
            return False
        if lv.is_cow_origin:
            raise FailedPrecondition(f"{vg}/{name} has copy-on-write snapshots")
        del self.lvs[(vg, name)]
        if lv.is_cow_snapshot:
            self._restore_origin(vg, lv.origin)
        return True

    def extend_lv(self, vg: str, name: str, size_bytes: int) -> None:
        self.calls.append(("extend_lv", vg, name, str(size_bytes)))
        if (vg, name) not in self.lvs:
            raise NotFound(f"Logical volume {name} not found in volume group {vg}.")
        self.lvs[(vg, name)] = replace(self.lvs[(vg, name)], size_bytes=size_bytes)

    def activate(self, vg: str, name: str) -> None:
        self.calls.append(("activate", vg, name))
        self._set_attr((vg, name), 4, "a")

    def deactivate(self, vg: str, name: str) -> None:
        self.calls.append(("deactivate", vg, name))
        self._set_attr((vg, name), 4, "-")

    def del_tags(self, vg: str, name: str, tags: Sequence[str]) -> None:
        self.calls.append(("del_tags", vg, name, *tags))
        lv = self.lvs[(vg, name)]
        self.lvs[(vg, name)] = replace(lv, tags=tuple(t for t in lv.tags if t not in tags))

    def change_tags(self, vg: str, name: str, *, add: Sequence[str], delete: Sequence[str]) -> None:
        self.calls.append(("change_tags", vg, name, *add, "--", *delete))
        if (vg, name) not in self.lvs:
            raise NotFound(f"Logical volume {name} not found in volume group {vg}.")
        lv = self.lvs[(vg, name)]
        kept = tuple(t for t in lv.tags if t not in delete)
        self.lvs[(vg, name)] = replace(lv, tags=(*kept, *(t for t in add if t not in kept)))


class FakeDevices:
    """Records wipes and copies into the same call log as FakeLvm."""

    def __init__(self, calls: list[tuple[str, ...]]) -> None:
        self.calls = calls
        self.kill_during_copy = False
        self.busy: set[str] = set()

    def wipe(self, path: str) -> None:
        if path in self.busy:
            raise FailedPrecondition(f"{path} is in use")
        self.calls.append(("wipe", path))

    def copy(self, source: str, target: str, size_bytes: int) -> None:
        self.calls.append(("copy", source, target, str(size_bytes)))
        if self.kill_during_copy:
            raise Killed(f"killed while copying to {target}")
