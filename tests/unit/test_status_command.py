"""`localcsi status`: the rows built from NodeLocalStorage and LogicalVolume objects, and the table."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi.status import (
    GIB,
    ExclusiveRow,
    VgRow,
    exclusive_rows,
    render_exclusive,
    render_json,
    render_table,
    rows,
    run,
)
from localcsi.testing.stub_apiserver import Reply, StubApiserver


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


def test_disks_and_mount_points_show_free_or_the_device_volume_holding_them() -> None:
    taken = "localcsi-dev-0123456789abcdef0123"
    node = storage("node-1", [{"name": taken, "physicalVolumes": ["/dev/vdc"]}], [])
    node["status"]["nodeStorageInfo"]["deviceInfo"] = [
        {"name": "/dev/vdb", "total": 2 * GIB, "mediaType": "ssd"},
        {"name": "/dev/vdc", "total": GIB, "mediaType": "hdd"},
        {"name": "/dev/vdd", "total": GIB, "mediaType": "hdd"},  # a PV of a shared VG: not exclusive storage
    ]
    node["status"]["nodeStorageInfo"]["mountPoints"] = [
        {"name": "/mnt/a", "total": 4 * GIB, "available": 3 * GIB},
        {"name": "/", "total": 9 * GIB, "available": GIB},
    ]
    node["status"]["filteredStorageInfo"].update(devices=["/dev/vdb"], mountPoints=["/mnt/a"])
    table = exclusive_rows([node])
    assert table == [
        ExclusiveRow("node-1", "Device", "/dev/vdb", 2 * GIB, "ssd", "free"),
        ExclusiveRow("node-1", "Device", "/dev/vdc", GIB, "hdd", f"Device volume ({taken})"),
        ExclusiveRow("node-1", "MountPoint", "/mnt/a", 4 * GIB, "-", "offered, 1.0Gi used"),
    ]
    out = io.StringIO()
    render_exclusive(table, out)
    blank, header, *lines = out.getvalue().splitlines()
    assert blank == "" and header.split() == ["NODE", "KIND", "NAME", "TOTAL", "MEDIA", "STATE"]
    assert lines[0].split() == ["node-1", "Device", "/dev/vdb", "2.0Gi", "ssd", "free"]
    empty = io.StringIO()
    render_exclusive([], empty)
    assert empty.getvalue() == "", "nothing exclusive: the VG table alone, as before"


def test_json_holds_the_vgs_and_the_exclusive_disks_and_mount_points() -> None:
    out = io.StringIO()
    vg = VgRow("node-1", "localcsi-pool-0", 10 * GIB, 4 * GIB, 0, "DiskReady", 2, 0)
    disk = ExclusiveRow("node-1", "Device", "/dev/vdb", 2 * GIB, "ssd", "free")
    render_json([vg], [disk], out)
    document = json.loads(out.getvalue())
    assert document["volumeGroups"] == [{"node": "node-1", "vg": "localcsi-pool-0", "total": 10 * GIB,
                                         "allocatable": 4 * GIB, "reserved": 0, "condition": "DiskReady",
                                         "volumes": 2, "snapshots": 0}]  # fmt: skip
    assert document["exclusive"] == [{"node": "node-1", "kind": "Device", "name": "/dev/vdb", "total": 2 * GIB,
                                      "media": "ssd", "state": "free"}]  # fmt: skip


def kubeconfig(path: Path, server: str, user: dict[str, Any]) -> str:
    path.write_text(
        yaml.safe_dump({
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        })
    )  # fmt: skip
    return str(path)


def test_an_unusable_kubeconfig_or_an_unreachable_apiserver_is_one_error_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a traceback: what an operator sees when the kubeconfig is wrong or the apiserver is down."""
    with StubApiserver(lambda _: Reply()) as server:
        refused = server.url  # nothing listens there once the server has stopped
    unsupported = kubeconfig(tmp_path / "oidc", refused, {"auth-provider": {"name": "oidc"}})
    assert run(argparse.Namespace(kubeconfig=unsupported, output="table"), io.StringIO()) == 1
    assert "auth-provider 'oidc' is not supported" in caplog.text
    caplog.clear()
    down = kubeconfig(tmp_path / "down", refused, {"token": "t"})
    assert run(argparse.Namespace(kubeconfig=down, output="table"), io.StringIO()) == 1
    assert "cannot read NodeLocalStorage and LogicalVolume resources" in caplog.text
    assert "Connection refused" in caplog.text
