"""The LVM adapter: lvm2's command-line tools behind typed methods returning core model values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from localcsi.core.errors import FailedPrecondition, Internal, NotFound
from localcsi.core.model import LogicalVolume, PhysicalVolume, VolumeGroup
from localcsi.core.tags import OWNER_TAG
from localcsi.lvm import commands
from localcsi.lvm.commands import LvSpec
from localcsi.lvm.errors import matches_existing_size, translate
from localcsi.lvm.reports import parse_fullreport, parse_lvs, parse_pvs, parse_vgs
from localcsi.lvm.runner import CommandFailed, CommandRunner


@dataclass(frozen=True)
class LvmState:
    """Everything placement and listing need, from a single ``lvm fullreport``."""

    vgs: tuple[VolumeGroup, ...]  # with their PVs attached
    lvs: tuple[LogicalVolume, ...]


def _attach_pvs(vgs: Sequence[VolumeGroup], pvs: Sequence[PhysicalVolume]) -> list[VolumeGroup]:
    return [replace(vg, pvs=tuple(pv for pv in pvs if pv.vg == vg.name)) for vg in vgs]


def _never(_: CommandFailed) -> bool:
    return False


class Lvm:
    def __init__(self, runner: CommandRunner, *, timeout: float | None = None) -> None:
        self.runner = runner
        self.timeout = timeout

    def _run(self, argv: Sequence[str], *, harmless: Callable[[CommandFailed], bool] = _never) -> str:
        """Run argv and return its stdout; lvm2 failures become core errors unless ``harmless``."""
        try:
            return self.runner.run(argv, timeout=self.timeout).stdout
        except CommandFailed as failure:
            if harmless(failure):
                return ""
            error = translate(failure)
            if error is failure:
                raise
            raise error from failure

    # -- reports --------------------------------------------------------------------------------

    def list_vgs(self, *names: str) -> list[VolumeGroup]:
        return parse_vgs(self._run(commands.vgs_argv(names)))

    def list_pvs(self, vg: str | None = None) -> list[PhysicalVolume]:
        pvs = parse_pvs(self._run(commands.pvs_argv()))
        return [pv for pv in pvs if vg is None or pv.vg == vg]

    def volume_groups(self, *names: str) -> list[VolumeGroup]:
        """VGs with their PVs attached: what placement needs for striping and raid1."""
        return _attach_pvs(self.list_vgs(*names), self.list_pvs())

    def list_lvs(self, vg: str | None = None, tag: str | None = None) -> list[LogicalVolume]:
        """LVs of one VG or all, optionally only those carrying ``tag`` (e.g. the owner tag)."""
        lvs = parse_lvs(self._run(commands.lvs_argv(vg=vg, tag=tag)))
        # lvs reads "VG @tag" as either-or; both filters must hold.
        return [lv for lv in lvs if (vg is None or lv.vg == vg) and (tag is None or tag in lv.tags)]

    def owned_lvs(self, vg: str | None = None) -> list[LogicalVolume]:
        return self.list_lvs(vg, OWNER_TAG)

    def get_lv(self, vg: str, name: str) -> LogicalVolume | None:
        try:
            lvs = parse_lvs(self._run(commands.lvs_argv(vg=vg, name=name)))
        except NotFound:
            return None
        return next((lv for lv in lvs if lv.vg == vg and lv.name == name), None)

    def state(self, vg: str | None = None) -> LvmState:
        stdout = self._run(commands.fullreport_argv(vg))
        vgs, pvs, lvs = parse_fullreport(stdout)
        return LvmState(tuple(_attach_pvs(vgs, pvs)), tuple(lvs))

    # -- changes ---------------------------------------------------------------------------------

    def create_lv(self, spec: LvSpec) -> None:
        self._run(commands.lvcreate_argv(spec))

    def ensure_thin_pool(
        self, vg: str, pool: str, size_bytes: int, tags: Sequence[str] = (OWNER_TAG,)
    ) -> LogicalVolume:
        """The thin pool ``vg/pool``, created with ``size_bytes`` if it does not exist yet."""
        existing = self.get_lv(vg, pool)
        if existing is None:
            self._run(commands.thin_pool_argv(vg, pool, size_bytes, tags))
            existing = self.get_lv(vg, pool)
            if existing is None:
                raise Internal(f"thin pool {vg}/{pool} was created but lvs does not show it")
        if not existing.is_thin_pool:
            raise FailedPrecondition(
                f"{vg}/{pool} exists but is not a thin pool (lv_attr {existing.attr}); choose another thinPool name"
            )
        return existing

    def create_snapshot(
        self, vg: str, origin: str, name: str, *, cow_bytes: int | None, tags: Sequence[str] = ()
    ) -> None:
        """A thick COW snapshot with ``cow_bytes`` of room, or a thin snapshot when ``cow_bytes`` is None."""
        self._run(commands.snapshot_argv(vg, origin, name, cow_bytes, tags))

    def remove_lv(self, vg: str, name: str, *, known: LogicalVolume | None = None) -> bool:
        """Remove an LV; False if it was already gone. ``known`` spares a lookup when the caller has one.

        Refuses an origin of thick snapshots: lvremove --yes would silently remove them too.
        """
        lv = known if known is not None else self.get_lv(vg, name)
        if lv is None:
            return False
        if lv.is_cow_origin:
            raise FailedPrecondition(f"{vg}/{name} has copy-on-write snapshots; delete its snapshots before the volume")
        try:
            self._run(commands.lvremove_argv(vg, name))
        except NotFound:
            return False
        return True

    def split_snapshot(self, vg: str, name: str) -> None:
        """Turn thick snapshot ``vg/name`` into a plain LV holding its COW store, so it can be wiped."""
        self._run(commands.split_snapshot_argv(vg, name))

    def extend_lv(self, vg: str, name: str, size_bytes: int) -> None:
        """Grow an LV to ``size_bytes``; growing to its current size is a successful no-op."""
        self._run(commands.lvextend_argv(vg, name, size_bytes), harmless=matches_existing_size)

    def activate(self, vg: str, name: str) -> None:
        self._run(commands.activation_argv(vg, name, active=True))

    def deactivate(self, vg: str, name: str) -> None:
        self._run(commands.activation_argv(vg, name, active=False))

    def activate_vgs(self, *vgs: str) -> None:
        """``vgchange --activate y``: after a reboot, bring every LV back (all VGs when none named)."""
        self._run(commands.vgchange_activate_argv(vgs))

    def add_tags(self, vg: str, name: str, tags: Sequence[str]) -> None:
        self._run(commands.tags_argv(vg, name, add=tags))

    def del_tags(self, vg: str, name: str, tags: Sequence[str]) -> None:
        self._run(commands.tags_argv(vg, name, delete=tags))

    def change_tags(self, vg: str, name: str, *, add: Sequence[str], delete: Sequence[str]) -> None:
        """Swap tags in one ``lvchange``: lvm2 commits both in one metadata update."""
        self._run(commands.tags_argv(vg, name, add=add, delete=delete))
