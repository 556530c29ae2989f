"""`localcsi status`: the rows built from NodeLocalStorage and LogicalVolume objects, and the table."""

from __future__ import annotations

import io
from typing import Any

from localcsi.status import GIB, VgRow, render_table, rows


def storage(node: str, groups: list[dict[str, Any]], managed: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": node},
        "status": {
            "nodeStorageInfo": {"volumeGroups": groups},
            "filteredStorageInfo": {"volumeGroups": managed},
        },
    }


def group(name: str, total_gib: int, allocatable_gib: int, reserved_gib: int = 0) -> dict[str, Any]:
    return {"name": name, "total": total_gib * GIB, "allocatable": allocatable_gib * GIB,
            "reserved": reserved_gib * GIB, "condition": "DiskReady"}  # fmt: skip


def llv(node: str, vg: str, kind: str = "Volume") -> dict[str, Any]:
    return {"spec": {"nodeName": node, "vgName": vg, "kind": kind}}


def test_rows_cover_managed_vgs_with_their_volumes_and_snapshots() -> None:
    storages = [
        storage("node-b", [group("localcsi-a", 10, 4, 1), group("foreign", 50, 50)], ["localcsi-a"]),
        {"metadata": {"name": "node-c"}},  # the agent has not reported yet
        storage("node-a", [], []),
    ]
    volumes = [llv("node-b", "localcsi-a"), llv("node-b", "localcsi-a"), llv("node-b", "localcsi-a", "Snapshot")]
    assert rows(storages, volumes) == [
        VgRow("node-a", "-", 0, 0, 0, "NoVolumeGroup", 0, 0),
        VgRow("node-b", "localcsi-a", 10 * GIB, 4 * GIB, 1 * GIB, "DiskReady", 2, 1),
        VgRow("node-c", "-", 0, 0, 0, "NotReported", 0, 0),
    ]


def test_the_table_aligns_columns_and_shows_sizes_in_gib() -> None:
    out = io.StringIO()
    render_table([VgRow("node-1", "localcsi-pool-0", 10 * GIB, 3 * GIB // 2, 0, "DiskReady", 12, 0)], out)
    header, line = out.getvalue().splitlines()
    assert header.split() == ["NODE", "VG", "TOTAL", "ALLOCATABLE", "RESERVED", "CONDITION", "VOLUMES", "SNAPSHOTS"]
    assert line.split() == ["node-1", "localcsi-pool-0", "10.0Gi", "1.5Gi", "0.0Gi", "DiskReady", "12", "0"]
    assert header.index("ALLOCATABLE") == line.index("1.5Gi")
