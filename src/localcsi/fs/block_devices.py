"""Block devices and mounted filesystems as lsblk, findmnt and sysfs report them: the argv of each
listing and its parser, and devices' IO counters. Shared by the agent's discovery, the driver's Device
volumes and the node plugin's metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from localcsi.core.errors import Internal
from localcsi.core.nodestorage import DISK, PARTITION, BlockDevice, MountedFilesystem
from localcsi.fs.types import DeviceNumber

log = logging.getLogger(__name__)

LSBLK_COLUMNS = "NAME,KNAME,PATH,SIZE,RO,TYPE,ROTA,FSTYPE,MOUNTPOINT,PKNAME"
FINDMNT_COLUMNS = "TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,AVAIL,FSROOT"
SYS_BLOCK = Path("/sys/block")
PROC_DISKSTATS = Path("/proc/diskstats")
SECTOR = 512  # diskstats counts 512-byte sectors whatever the device's block size
_DEVICE_TYPES = (DISK, PARTITION)


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


class IoCounters(NamedTuple):
    """Completed IOs and bytes since the device appeared (the kernel's block/stat counters). A NamedTuple:
    the plugin makes one per published volume at every scrape, in half a frozen dataclass's time."""

    reads: int
    read_bytes: int
    writes: int
    written_bytes: int


def read_io_counters(devices: Sequence[DeviceNumber], diskstats: Path = PROC_DISKSTATS) -> list[IoCounters | None]:
    """Each device's counters, from one read of /proc/diskstats; None for a device it does not list (gone).

    One read for every device: a sysfs ``stat`` file per device cost 1000 opens, reads and closes at each
    scrape with 1000 volumes published, about 6 ms of a 13 ms scrape (docs/observability.md). After the
    major, minor and name columns, fields 1, 3, 5 and 7 are reads completed, sectors read, writes
    completed and sectors written (Documentation/admin-guide/iostats.rst). A line whose fields are not
    decimal is logged and its device counted as gone.
    """
    wanted = {(str(device.major).encode(), str(device.minor).encode()): index for index, device in enumerate(devices)}
    found: list[IoCounters | None] = [None] * len(devices)
    try:
        with open(diskstats, "rb", buffering=0) as stream:  # procfs: read to the end, unbuffered
            data = stream.readall()
    except OSError as error:
        log.warning("cannot read %s (%s): no IO counters", diskstats, error.strerror)
        return found
    for line in data.splitlines():
        fields = line.split(None, 10)  # the bytes as they are: no decoding, nothing split past field 7
        index = wanted.get((fields[0], fields[1])) if len(fields) > 1 else None
        if index is None:
            continue
        counts = fields[3:10]
        if len(counts) < 7 or not b"".join(counts).isdigit():  # no field is empty, so each is digits
            log.warning("unexpected line in %s: %r", diskstats, line.decode("ascii", "replace").strip())
            continue
        found[index] = IoCounters(int(counts[0]), int(counts[2]) * SECTOR, int(counts[4]), int(counts[6]) * SECTOR)
    return found
