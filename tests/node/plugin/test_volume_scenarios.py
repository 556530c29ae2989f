"""Scenario tests over the CSI gRPC API against the plugin in the node VM, checked with checksums."""

from __future__ import annotations

import time
from typing import Any

import pytest

from localcsi.csi import csi_pb2
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import GIB, MIB
from localcsi.testing.fixtures import THICK, THICK_VG, THIN
from localcsi.testing.guest_plugin import GuestPlugin
from localcsi.testing.guest_scripts import STEADY_WRITER
from localcsi.testing.vm import NodeVM

KINDS = {"thick": THICK, "thin": THIN}


def write_random(vm: NodeVM, path: str, mib: int) -> str:
    vm.check(["dd", "if=/dev/urandom", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync", "status=none"])
    return sha256(vm, path)


def sha256(vm: NodeVM, path: str, size: int | None = None) -> str:
    if size is None:
        return vm.check(["sha256sum", path]).stdout.split()[0]
    # A prefix of a block device: head reads exactly `size` bytes.
    script = f"import hashlib;print(hashlib.sha256(open('{path}','rb').read({size})).hexdigest())"
    return vm.check(["python3", "-c", script]).stdout.strip()


def create(plugin: GuestPlugin, name: str, size: int = GIB, params: dict[str, str] | None = None, **kw: Any) -> Any:
    return plugin.controller.CreateVolume(req.create_volume(name, size, params or THICK, **kw)).volume


def lv_names(vm: NodeVM, vg: str) -> list[str]:
    return vm.check(["lvs", "--noheadings", "-o", "lv_name", vg]).stdout.split()


def test_full_lifecycle(csi_plugin: GuestPlugin) -> None:
    vm = csi_plugin.vm
    volume = create(csi_plugin, "lifecycle", GIB)
    assert volume.capacity_bytes == GIB
    assert dict(volume.accessible_topology[0].segments) == {"topology.localcsi.io/node": csi_plugin.node_id}
    assert create(csi_plugin, "lifecycle", GIB).volume_id == volume.volume_id, "CreateVolume is not idempotent"

    target = "/mnt/lifecycle"
    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))  # idempotent
    assert "ext4" in vm.check(["findmnt", "-n", "-o", "FSTYPE", target]).stdout
    digest = write_random(vm, f"{target}/data", 16)
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    assert vm.run(["findmnt", target]).rc != 0

    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    assert sha256(vm, f"{target}/data") == digest
    got = csi_plugin.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id))
    assert got.volume.volume_id == volume.volume_id
    listed = csi_plugin.controller.ListVolumes(csi_pb2.ListVolumesRequest())
    assert volume.volume_id in {entry.volume.volume_id for entry in listed.entries}

    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))  # idempotent
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))  # idempotent
    assert not [name for name in lv_names(vm, THICK_VG) if name.startswith("csi-")]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_snapshot_restore_and_clone(csi_plugin: GuestPlugin, kind: str) -> None:
    vm = csi_plugin.vm
    origin = create(csi_plugin, f"origin-{kind}", 512 * MIB, KINDS[kind])
    target = f"/mnt/origin-{kind}"
    csi_plugin.node.NodePublishVolume(req.publish(origin.volume_id, target))
    before = write_random(vm, f"{target}/data", 24)
    vm.check(["sync"])

    snapshot = csi_plugin.controller.CreateSnapshot(req.create_snapshot(origin.volume_id, f"snap-{kind}")).snapshot
    assert snapshot.ready_to_use
    assert snapshot.source_volume_id == origin.volume_id
    after = write_random(vm, f"{target}/data", 24)  # the origin moves on; the snapshot must not
    assert after != before

    restored = create(
        csi_plugin, f"restored-{kind}", 512 * MIB, KINDS[kind], source=req.snapshot_source(snapshot.snapshot_id)
    )
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id
    restored_target = f"/mnt/restored-{kind}"
    csi_plugin.node.NodePublishVolume(req.publish(restored.volume_id, restored_target))
    assert sha256(vm, f"{restored_target}/data") == before
    written = write_random(vm, f"{restored_target}/new", 4)  # a restore is a normal writable volume
    assert sha256(vm, f"{restored_target}/new") == written
    assert sha256(vm, f"{target}/data") == after, "writing the restore changed the origin"

    clone = create(csi_plugin, f"clone-{kind}", 512 * MIB, KINDS[kind], source=req.volume_source(origin.volume_id))
    clone_target = f"/mnt/clone-{kind}"
    csi_plugin.node.NodePublishVolume(req.publish(clone.volume_id, clone_target))
    assert sha256(vm, f"{clone_target}/data") == after

    for volume_id, path in (
        (clone.volume_id, clone_target),
        (restored.volume_id, restored_target),
        (origin.volume_id, target),
    ):
        csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume_id, path))
    csi_plugin.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
    for volume_id in (clone.volume_id, restored.volume_id, origin.volume_id):
        csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


def test_block_volume_round_trip(csi_plugin: GuestPlugin) -> None:
    vm = csi_plugin.vm
    volume = create(csi_plugin, "raw-block", 256 * MIB, capability=req.block_capability())
    target = "/var/lib/localcsi-test/block/dev"
    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target, req.block_capability()))
    assert vm.check(["blockdev", "--getsize64", target]).stdout.strip() == str(256 * MIB)
    source = "/tmp/block-pattern"
    digest = write_random(vm, source, 64)
    vm.check(["dd", f"if={source}", f"of={target}", "bs=1M", "oflag=direct", "conv=fsync", "status=none"])
    assert sha256(vm, target, 64 * MIB) == digest
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    assert vm.run(["test", "-e", target]).rc != 0
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_online_expansion_while_writing(csi_plugin: GuestPlugin, fs_type: str) -> None:
    vm = csi_plugin.vm
    capability = req.mount_capability(fs_type)
    volume = create(csi_plugin, f"grow-{fs_type}", 512 * MIB, capability=capability)
    target = f"/mnt/grow-{fs_type}"
    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target, capability))
    vm.guest.put("/tmp/writer.py", STEADY_WRITER.encode())
    chunks = 48
    log = f"/tmp/writer-{fs_type}.out"
    writer = vm.guest.spawn(["python3", "/tmp/writer.py", f"{target}/stream", str(chunks)], log=log)
    time.sleep(1.0)
    assert vm.guest.signal(writer, 0)[0], "the writer finished before the expansion began"

    expanded = csi_plugin.controller.ControllerExpandVolume(req.expand(volume.volume_id, GIB))
    assert expanded.capacity_bytes == GIB
    assert expanded.node_expansion_required
    grown = csi_plugin.node.NodeExpandVolume(req.node_expand(volume.volume_id, target, GIB))
    assert grown.capacity_bytes >= GIB
    assert vm.guest.signal(writer, 0)[0], "the writer was not running during the expansion"

    alive, rc = vm.guest.signal(writer, 0, wait=120)
    assert (alive, rc) == (False, 0), f"writer still running or failed: rc={rc}"
    expected = vm.check(["cat", log]).stdout.strip()
    assert len(expected) == 64, f"writer failed: {expected}"
    assert sha256(vm, f"{target}/stream") == expected
    stats = csi_plugin.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=target)
    )
    [byte_usage] = [u for u in stats.usage if u.unit == csi_pb2.VolumeUsage.BYTES]
    assert byte_usage.total > 900 * MIB, f"filesystem did not grow: {byte_usage.total}"
    assert byte_usage.used >= chunks * MIB
    assert not stats.volume_condition.abnormal
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
