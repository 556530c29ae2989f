"""Discovery: the node's disks, mounts and LVM state in a fixed number of commands per cycle.

Three commands, however many LVs there are: ``lsblk`` (disks and partitions), ``findmnt`` (mounted
filesystems with their size) and one ``lvm fullreport`` (VGs, PVs and LVs). ``mediaType`` comes from reading
``/sys/block/<disk>/queue/rotational``: files, not commands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from localcsi.core.nodestorage import NodeInventory
from localcsi.fs.adapter import Filesystems
from localcsi.fs.block_devices import SYS_BLOCK, findmnt_argv, lsblk_argv, parse_findmnt, parse_lsblk, read_rotational
from localcsi.lvm.commands import fullreport_argv
from localcsi.lvm.reports import parse_fullreport
from localcsi.lvm.runner import CommandResult, CommandRunner

log = logging.getLogger(__name__)

LVM_REPORT = "lvm fullreport"


LVM_PROGRAMS = frozenset({"lvm", "vgs", "pvs", "lvs", "vgchange", "vgcreate", "pvcreate", "pvremove", "lvremove",
                          "lvcreate", "lvchange", "lvextend", "lvconvert"})  # fmt: skip


class CountingRunner:
    """Passes commands to another runner and keeps the argv of each, so a cycle can say what it ran."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self.commands: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        self.commands.append(tuple(argv))
        return self.runner.run(argv, timeout=timeout)

    @property
    def count(self) -> int:
        return len(self.commands)

    @property
    def lvm_count(self) -> int:
        return sum(1 for argv in self.commands if argv[0] in LVM_PROGRAMS)

    def reset(self) -> None:
        self.commands.clear()


def parse_lvm_report(stdout: str) -> NodeInventory:
    """VGs (with their PVs), PVs in no VG, and LVs from one ``lvm fullreport``."""
    vgs, pvs, lvs = parse_fullreport(stdout, LVM_REPORT)
    with_pvs = [replace(vg, pvs=tuple(pv for pv in pvs if pv.vg == vg.name)) for vg in vgs]
    free = tuple(pv for pv in pvs if not pv.vg)
    return NodeInventory(vgs=tuple(with_pvs), free_pvs=free, lvs=tuple(lvs))


class Discovery:
    def __init__(self, runner: CommandRunner, sys_block: Path = SYS_BLOCK) -> None:
        self.runner = runner
        self.sys_block = sys_block

    def discover(self) -> NodeInventory:
        devices = parse_lsblk(self.runner.run(lsblk_argv()).stdout, read_rotational(self.sys_block))
        mounts = parse_findmnt(self.runner.run(findmnt_argv()).stdout)
        lvm = parse_lvm_report(self.runner.run(fullreport_argv()).stdout)
        return replace(lvm, devices=tuple(devices), mounts=tuple(mounts))

    def probe(self, paths: Sequence[str]) -> dict[str, str | None]:
        """What ``blkid -p`` finds on each device (None: nothing); a device that cannot be probed is left out."""
        found: dict[str, str | None] = {}
        fs = Filesystems(self.runner)
        for path in paths:
            try:
                signature = fs.probe(path)
            except Exception as error:  # one unreadable device must not stop the others
                log.warning("cannot probe %s with blkid: %s", path, error)
                continue
            found[path] = str(signature) if signature is not None else None
        return found
