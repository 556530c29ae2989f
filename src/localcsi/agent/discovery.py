"""Discovery: the node's disks, mounts and LVM state in a fixed number of commands per cycle.

Three commands, however many LVs there are: ``lsblk`` (disks and partitions), ``findmnt`` (mounted
filesystems with their size) and one ``lvm fullreport`` (VGs, PVs and LVs). ``mediaType`` comes from reading
``/sys/block/<disk>/queue/rotational``: files, not commands.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from localcsi.core.errors import Internal
from localcsi.core.nodestorage import DISK, PARTITION, BlockDevice, MountedFilesystem, NodeInventory
from localcsi.fs.adapter import Filesystems
from localcsi.lvm.commands import fullreport_argv
from localcsi.lvm.reports import parse_lvs, parse_pvs, parse_vgs
from localcsi.lvm.runner import CommandResult, CommandRunner

log = logging.getLogger(__name__)

LSBLK_COLUMNS = "NAME,KNAME,PATH,SIZE,RO,TYPE,ROTA,FSTYPE,MOUNTPOINT,PKNAME"
FINDMNT_COLUMNS = "TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,AVAIL,FSROOT"
SYS_BLOCK = Path("/sys/block")
LVM_REPORT = "lvm fullreport"
_DEVICE_TYPES = (DISK, PARTITION)


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


def lsblk_argv() -> list[str]:
    return ["lsblk", "--json", "--bytes", "--output", LSBLK_COLUMNS]


def findmnt_argv() -> list[str]:
    return ["findmnt", "--json", "--bytes", "--list", "--output", FINDMNT_COLUMNS]


def _json(stdout: str, command: str) -> dict[str, Any]:
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise Internal(f"{command} did not print JSON ({exc.msg}); output starts with {stdout[:200]!r}") from None
    if not isinstance(document, dict):
        raise Internal(f"{command} printed JSON that is not an object: {stdout[:200]!r}")
    return document


def _walk(nodes: object) -> Iterator[dict[str, Any]]:
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict):
            yield node
            if node.get("type") in _DEVICE_TYPES:  # below a device-mapper or md device: nothing of ours
                yield from _walk(node.get("children"))


def _text(node: Mapping[str, Any], key: str) -> str:
    value = node.get(key)
    return value if isinstance(value, str) else ""


def _bytes(node: Mapping[str, Any], key: str, command: str) -> int:
    value = node.get(key)
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Internal(f"{command} printed {key}={value!r}, not a number of bytes") from None


def parse_lsblk(stdout: str, rotational: Mapping[str, bool]) -> list[BlockDevice]:
    """Disks and partitions from ``lsblk --json --bytes`` (tree form); ``rotational`` from sysfs wins."""
    nodes = list(_walk(_json(stdout, "lsblk").get("blockdevices")))
    children: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        children.setdefault(_text(node, "pkname"), []).append(node)
    devices: dict[str, BlockDevice] = {}
    for node in nodes:
        kind, name = node.get("type"), _text(node, "kname")
        if kind not in _DEVICE_TYPES or name in devices:
            continue
        size = _bytes(node, "size", "lsblk")
        below = {_text(child, "kname"): child.get("type") for child in children.get(name, [])}
        parent = _text(node, "pkname") if kind == PARTITION else ""
        devices[name] = BlockDevice(
            name=name,
            path=_text(node, "path") or f"/dev/{name}",
            size_bytes=size,
            type=str(kind),
            rotational=rotational.get(parent or name, bool(node.get("rota"))),
            read_only=bool(node.get("ro")),
            parent=parent,
            partitions=tuple(sorted(k for k, t in below.items() if t == PARTITION)),
            holders=tuple(sorted(k for k, t in below.items() if t != PARTITION)),
            mountpoint=_text(node, "mountpoint"),
            fstype=_text(node, "fstype"),
        )
    return list(devices.values())


def parse_findmnt(stdout: str) -> list[MountedFilesystem]:
    """Mounted filesystems whose source is a block device, from ``findmnt --json --bytes --list``."""
    mounts = []
    for row in _json(stdout, "findmnt").get("filesystems") or []:
        source = _text(row, "source") if isinstance(row, dict) else ""
        if not source.startswith("/dev/"):
            continue
        fsroot = _text(row, "fsroot") or "/"
        mounts.append(
            MountedFilesystem(
                path=_text(row, "target"),
                # a bind mount of a subdirectory shows as /dev/vdb[/sub]
                device=source.split("[", 1)[0],
                fs_type=_text(row, "fstype"),
                options=tuple(o for o in _text(row, "options").split(",") if o),
                total_bytes=_bytes(row, "size", "findmnt"),
                available_bytes=_bytes(row, "avail", "findmnt"),
                is_bind=fsroot != "/",
            )
        )
    return mounts


def parse_lvm_report(stdout: str) -> NodeInventory:
    """VGs (with their PVs), PVs in no VG, and LVs from one ``lvm fullreport``."""
    pvs = parse_pvs(stdout, LVM_REPORT)
    vgs = [replace(vg, pvs=tuple(pv for pv in pvs if pv.vg == vg.name)) for vg in parse_vgs(stdout, LVM_REPORT)]
    free = tuple(pv for pv in pvs if not pv.vg)
    return NodeInventory(vgs=tuple(vgs), free_pvs=free, lvs=tuple(parse_lvs(stdout, LVM_REPORT)))


def read_rotational(sys_block: Path = SYS_BLOCK) -> dict[str, bool]:
    """Kernel name -> rotational, from /sys/block/<name>/queue/rotational (disks only)."""
    flags: dict[str, bool] = {}
    try:
        entries = list(sys_block.iterdir())
    except OSError as exc:
        log.warning("cannot list %s (%s); mediaType comes from lsblk", sys_block, exc.strerror)
        return flags
    for entry in entries:
        try:
            flags[entry.name] = (entry / "queue" / "rotational").read_text().strip() == "1"
        except OSError:
            continue  # not every block device has a queue (e.g. some virtual ones)
    return flags


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
