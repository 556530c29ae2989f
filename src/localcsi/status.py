"""``localcsi status``: one line per node and VG (capacity, reservation, condition, volumes), read
from the NodeLocalStorage and LogicalVolume resources; a table for people, JSON for scripts. Both then
list the whole disks and mount points of exclusive volumes (Device, MountPoint): free or used."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import urllib3

from localcsi.core.exclusive import is_device_vg
from localcsi.k8s.client import api_client
from localcsi.k8s.errors import KubeError
from localcsi.k8s.kubeconfig import ConfigError
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources

log = logging.getLogger(__name__)

GIB = 1024**3
COLUMNS = ("NODE", "VG", "TOTAL", "ALLOCATABLE", "RESERVED", "CONDITION", "VOLUMES", "SNAPSHOTS")


@dataclass(frozen=True)
class VgRow:
    node: str
    vg: str
    total: int
    allocatable: int
    reserved: int
    condition: str
    volumes: int
    snapshots: int


def rows(storages: Iterable[Mapping[str, Any]], logical_volumes: Iterable[Mapping[str, Any]]) -> list[VgRow]:
    """A row per VG that passed a node's listConfig; a node with none gets one row saying so."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for obj in logical_volumes:
        spec = obj.get("spec") or {}
        counts[(str(spec.get("nodeName")), str(spec.get("vgName")), str(spec.get("kind") or "Volume"))] += 1
    result: list[VgRow] = []
    for storage in sorted(storages, key=lambda obj: str(obj["metadata"]["name"])):
        node = str(storage["metadata"]["name"])
        status = storage.get("status") or {}
        managed = set((status.get("filteredStorageInfo") or {}).get("volumeGroups") or [])
        groups = [vg for vg in (status.get("nodeStorageInfo") or {}).get("volumeGroups") or [] if vg["name"] in managed]
        if not groups:
            result.append(VgRow(node, "-", 0, 0, 0, "NoVolumeGroup" if status else "NotReported", 0, 0))
        for vg in sorted(groups, key=lambda group: str(group["name"])):
            name = str(vg["name"])
            result.append(
                VgRow(
                    node,
                    name,
                    int(vg.get("total") or 0),
                    int(vg.get("allocatable") or 0),
                    int(vg.get("reserved") or 0),
                    str(vg.get("condition") or "Unknown"),
                    counts[(node, name, "Volume")],
                    counts[(node, name, "Snapshot")],
                )
            )
    return result


EXCLUSIVE_COLUMNS = ("NODE", "KIND", "NAME", "TOTAL", "MEDIA", "STATE")


@dataclass(frozen=True)
class ExclusiveRow:
    node: str
    kind: str  # Device or MountPoint
    name: str
    total: int
    media: str
    state: str  # free, a Device volume's VG, or not offered (in use, or not selected by listConfig)


def exclusive_rows(storages: Iterable[Mapping[str, Any]]) -> list[ExclusiveRow]:
    """The disks and mount points of each node: free to take whole, or what holds them."""
    result: list[ExclusiveRow] = []
    for storage in sorted(storages, key=lambda obj: str(obj["metadata"]["name"])):
        node = str(storage["metadata"]["name"])
        status = storage.get("status") or {}
        info, filtered = status.get("nodeStorageInfo") or {}, status.get("filteredStorageInfo") or {}
        holders = {
            pv: str(vg["name"])
            for vg in info.get("volumeGroups") or []
            if is_device_vg(str(vg.get("name")))
            for pv in vg.get("physicalVolumes") or []
        }
        free = set(filtered.get("devices") or [])
        for disk in sorted(info.get("deviceInfo") or [], key=lambda d: str(d.get("name"))):
            name = str(disk.get("name"))
            state = "free" if name in free else (f"Device volume ({holders[name]})" if name in holders else "-")
            if state == "-":
                continue  # a disk in use otherwise (a VG's PV, partitioned, mounted): not exclusive storage
            result.append(ExclusiveRow(node, "Device", name, int(disk.get("total") or 0), str(disk.get("mediaType")),
                                       state))  # fmt: skip
        offered = set(filtered.get("mountPoints") or [])
        for point in sorted(info.get("mountPoints") or [], key=lambda m: str(m.get("name"))):
            name = str(point.get("name"))
            if name in offered:
                used = int(point.get("total") or 0) - int(point.get("available") or 0)
                state = f"offered, {_gib(used)} used"
                result.append(ExclusiveRow(node, "MountPoint", name, int(point.get("total") or 0), "-", state))
    return result


def render_exclusive(table: list[ExclusiveRow], out: TextIO) -> None:
    if not table:
        return
    cells = [EXCLUSIVE_COLUMNS, *((r.node, r.kind, r.name, _gib(r.total), r.media, r.state) for r in table)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(EXCLUSIVE_COLUMNS))]
    out.write("\n")
    for row in cells:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


def render_json(table: list[VgRow], exclusive: list[ExclusiveRow], out: TextIO) -> None:
    document = {"volumeGroups": [asdict(row) for row in table], "exclusive": [asdict(row) for row in exclusive]}
    json.dump(document, out, indent=2)
    out.write("\n")


def _gib(size: int) -> str:
    return f"{size / GIB:.1f}Gi"


def render_table(table: list[VgRow], out: TextIO) -> None:
    cells = [COLUMNS]
    for r in table:
        sizes = (_gib(r.total), _gib(r.allocatable), _gib(r.reserved))
        cells.append((r.node, r.vg, *sizes, r.condition, str(r.volumes), str(r.snapshots)))
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        api = api_client(args.kubeconfig)
        storages, _ = CustomResources(api, NODE_LOCAL_STORAGE).list()
        volumes, _ = CustomResources(api, LOGICAL_VOLUME).list()
    except (KubeError, ConfigError, OSError, ValueError, urllib3.exceptions.HTTPError) as error:
        log.error("cannot read NodeLocalStorage and LogicalVolume resources: %s", error)
        return 1
    table, exclusive = rows(storages, volumes), exclusive_rows(storages)
    if args.output == "json":
        render_json(table, exclusive, out)
    else:
        render_table(table, out)
        render_exclusive(exclusive, out)
    return 0
