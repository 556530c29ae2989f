#!/usr/bin/env python3
"""The localcsi demo: a real volume's whole life on real LVM, inside the node VM.

    tox -e demo          (root, qemu and debootstrap needed; the first run builds the VM image)

Boots the node VM, gives the plugin a VolumeGroup on a blank data disk, runs `localcsi plugin`
in standalone mode, and walks one volume through create, publish and write, expansion,
stats, snapshot and restore, and delete over the CSI gRPC API, timing every step.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from localcsi.csi import csi_pb2
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import install_project
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM, VMConfig

VG = "localcsi-demo"
SIZE = 256 * MIB
GROWN = 512 * MIB
T = TypeVar("T")
console = Console()
timings: list[tuple[str, float, str]] = []


def step(title: str, action: Callable[[], T], detail: Callable[[T], str] = lambda _: "") -> T:
    with console.status(f"[bold]{title}…"):
        start = time.monotonic()
        result = action()
        elapsed = time.monotonic() - start
    text = detail(result)
    timings.append((title, elapsed, text))
    console.print(f"[green]✓[/] {title} [dim]({elapsed:.2f}s)[/] {text}")
    return result


def create(plugin: GuestPlugin, name: str, size: int, source: Any = None) -> Any:
    return plugin.controller.CreateVolume(req.create_volume(name, size, {"vgName": VG}, source=source)).volume


def publish(plugin: GuestPlugin, volume_id: str, target: str) -> None:
    plugin.node.NodePublishVolume(req.publish(volume_id, target))


def unpublish(plugin: GuestPlugin, volume_id: str, target: str) -> None:
    plugin.node.NodeUnpublishVolume(req.unpublish(volume_id, target))


def checksum(vm: NodeVM, path: str) -> str:
    return vm.check(["sha256sum", path]).stdout.split()[0]


def lifecycle(vm: NodeVM, plugin: GuestPlugin) -> None:
    volume = step("CreateVolume 256 MiB ext4", lambda: create(plugin, "demo-volume", SIZE), lambda v: v.volume_id)
    target, restored_target = "/mnt/demo/volume", "/mnt/demo/restored"
    step(
        "NodePublishVolume (mkfs + mount)",
        lambda: publish(plugin, volume.volume_id, target),
        lambda _: target,
    )
    write = ["dd", "if=/dev/urandom", f"of={target}/data", "bs=1M", "count=32", "conv=fsync", "status=none"]
    step("write 32 MiB", lambda: vm.check(write))
    original = step("checksum", lambda: checksum(vm, f"{target}/data"), lambda s: s[:16])

    step(
        "ControllerExpandVolume to 512 MiB",
        lambda: plugin.controller.ControllerExpandVolume(req.expand(volume.volume_id, GROWN)),
        lambda r: f"{r.capacity_bytes / MIB:.0f} MiB, node expansion required: {r.node_expansion_required}",
    )
    step(
        "NodeExpandVolume (online resize2fs)",
        lambda: plugin.node.NodeExpandVolume(req.node_expand(volume.volume_id, target, GROWN)),
        lambda r: f"{r.capacity_bytes / MIB:.0f} MiB",
    )
    stats = step(
        "NodeGetVolumeStats",
        lambda: plugin.node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=target)
        ),
    )
    for usage in stats.usage:
        unit = csi_pb2.VolumeUsage.Unit.Name(usage.unit).lower()
        console.print(f"    {unit}: total {usage.total}, used {usage.used}, available {usage.available}")
    condition = stats.volume_condition
    console.print(f"    condition: {'abnormal' if condition.abnormal else 'healthy'} {condition.message}")

    snapshot = step(
        "CreateSnapshot",
        lambda: plugin.controller.CreateSnapshot(req.create_snapshot(volume.volume_id, "demo-snapshot")).snapshot,
        lambda s: s.snapshot_id,
    )
    source = req.snapshot_source(snapshot.snapshot_id)
    restored = step(
        "CreateVolume from the snapshot",
        lambda: create(plugin, "demo-restored", GROWN, source),
        lambda v: v.volume_id,
    )
    step("publish the restored volume", lambda: publish(plugin, restored.volume_id, restored_target))
    same = step(
        "restored data equals the original",
        lambda: checksum(vm, f"{restored_target}/data") == original,
        lambda ok: "[green]identical[/]" if ok else "[red]DIFFERENT[/]",
    )
    if not same:
        raise SystemExit("restore from snapshot lost data")

    for volume_id, path in ((restored.volume_id, restored_target), (volume.volume_id, target)):
        step(f"NodeUnpublishVolume {path}", functools.partial(unpublish, plugin, volume_id, path))
    step(
        "DeleteSnapshot",
        lambda: plugin.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id)),
    )
    for volume_id in (restored.volume_id, volume.volume_id):
        step(
            f"DeleteVolume {volume_id}",
            functools.partial(plugin.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id)),
        )
    remaining = vm.check(["lvs", "--noheadings", "-o", "lv_name", VG]).stdout.split()
    console.print(f"LVs left in {VG}: {remaining or 'none'}")


def main() -> int:
    phases = Phases(write=lambda line: console.print(f"[dim]{line}[/]"))
    config = VMConfig(disks_gib=[8], port_forwards={PLUGIN_TCP_PORT: 0})
    with NodeVM(config, phases) as vm:
        install_project(vm)
        disk = vm.data_disks()[0]
        step(f"pvcreate + vgcreate {VG} on {disk}", lambda: vm.check(["vgcreate", "-y", VG, disk]))
        plugin = step("start localcsi plugin (standalone)", lambda: GuestPlugin(vm).start())
        try:
            lifecycle(vm, plugin)
        except Exception:
            console.print(plugin.logs())
            raise
        finally:
            plugin.stop()
    table = Table(title="localcsi demo: every step on real LVM in the node VM")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for title, elapsed, _ in timings:
        table.add_row(title, f"{elapsed:.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
