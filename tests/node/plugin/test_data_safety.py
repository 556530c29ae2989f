"""Data safety on real LVM: no reformat, no previous tenant's data, no duplicate LV after a crash."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from localcsi.csi import csi_pb2
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.fixtures import THICK, THICK_VG, THIN, THIN_VG
from localcsi.testing.guest_plugin import GuestPlugin
from localcsi.testing.vm import NodeVM

KINDS = {"thick": (THICK, THICK_VG), "thin": (THIN, THIN_VG)}
CREATING = "localcsi.io/state=creating"


def sha256_prefix(vm: NodeVM, path: str, size: int) -> str:
    script = f"import hashlib;print(hashlib.sha256(open('{path}','rb').read({size})).hexdigest())"
    return vm.check(["python3", "-c", script]).stdout.strip()


def zeros_digest(vm: NodeVM, size: int) -> str:
    return vm.check(
        ["python3", "-c", f"import hashlib;print(hashlib.sha256(bytes({size})).hexdigest())"]
    ).stdout.strip()


def blkid_type(vm: NodeVM, device: str) -> str:
    return vm.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device]).stdout.strip()


def device_of(vm: NodeVM, volume_id: str) -> str:
    """The LV behind a volume: found by the CSI tags, not by guessing the id format."""
    out = vm.check(["lvs", "--reportformat", "json", "-o", "vg_name,lv_name,lv_tags"]).json()
    for row in out["report"][0]["lv"]:
        if row["lv_name"] in volume_id and row["vg_name"] in volume_id:
            return f"/dev/{row['vg_name']}/{row['lv_name']}"
    raise AssertionError(f"no LV for {volume_id}")


def test_existing_filesystem_is_never_reformatted(csi_plugin: GuestPlugin) -> None:
    vm = csi_plugin.vm
    volume = csi_plugin.controller.CreateVolume(req.create_volume("keep-my-data", 512 * MIB, THICK)).volume
    target = "/mnt/keep"
    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    vm.check(["dd", "if=/dev/urandom", f"of={target}/data", "bs=1M", "count=8", "conv=fsync", "status=none"])
    digest = vm.check(["sha256sum", f"{target}/data"]).stdout.split()[0]
    uuid = vm.check(["findmnt", "-n", "-o", "UUID", target]).stdout.strip()
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))

    csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    assert vm.check(["findmnt", "-n", "-o", "UUID", target]).stdout.strip() == uuid, "the volume was reformatted"
    assert vm.check(["sha256sum", f"{target}/data"]).stdout.split()[0] == digest
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))

    # A signature that is not the requested filesystem: refuse, and leave it as it is.
    device = device_of(vm, volume.volume_id)
    vm.check(["wipefs", "-a", device])
    vm.check(["mkfs.xfs", "-q", device])
    with pytest.raises(grpc.RpcError) as refused:
        csi_plugin.node.NodePublishVolume(req.publish(volume.volume_id, "/mnt/keep-xfs", req.mount_capability("ext4")))
    assert refused.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
    assert blkid_type(vm, device) == "xfs", "a foreign filesystem was overwritten"
    assert vm.run(["findmnt", "/mnt/keep-xfs"]).rc != 0
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_new_volume_never_shows_previous_tenant_data(csi_plugin: GuestPlugin, kind: str) -> None:
    vm = csi_plugin.vm
    params, _ = KINDS[kind]
    size = 128 * MIB
    block = req.block_capability()
    old = csi_plugin.controller.CreateVolume(req.create_volume(f"tenant-a-{kind}", size, params, block)).volume
    target = f"/var/lib/localcsi-test/{kind}-a"
    csi_plugin.node.NodePublishVolume(req.publish(old.volume_id, target, block))
    vm.check(["dd", "if=/dev/urandom", f"of={target}", "bs=1M", f"count={size // MIB}", "oflag=direct", "status=none"])
    assert sha256_prefix(vm, target, size) != zeros_digest(vm, size)
    old_device = device_of(vm, old.volume_id)
    old_extents = vm.check(["lvs", "--noheadings", "-o", "seg_pe_ranges", old_device]).stdout.strip()
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(old.volume_id, target))
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=old.volume_id))

    new = csi_plugin.controller.CreateVolume(req.create_volume(f"tenant-b-{kind}", size, params, block)).volume
    new_device = device_of(vm, new.volume_id)
    if kind == "thick":  # the same physical extents come back: the test means something
        assert vm.check(["lvs", "--noheadings", "-o", "seg_pe_ranges", new_device]).stdout.strip() == old_extents
    new_target = f"/var/lib/localcsi-test/{kind}-b"
    csi_plugin.node.NodePublishVolume(req.publish(new.volume_id, new_target, block))
    assert sha256_prefix(vm, new_target, size) == zeros_digest(vm, size), "previous tenant's data is readable"
    csi_plugin.node.NodeUnpublishVolume(req.unpublish(new.volume_id, new_target))
    csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=new.volume_id))


def tagged_lvs(vm: NodeVM, vg: str) -> list[str]:
    out = vm.check(["lvs", "--reportformat", "json", "-o", "lv_name,lv_tags", vg]).json()
    return [row["lv_name"] for row in out["report"][0]["lv"] if "localcsi.io" in row["lv_tags"]]


def test_kill_9_during_create_then_retry_leaves_one_lv(csi_plugin: GuestPlugin) -> None:
    """Kill the plugin while it copies a thick snapshot into a new volume: the half copy is marked and
    never listed; the retry finishes it into exactly one LV with the snapshot's data. 512 MiB: the copy
    takes tens of seconds under emulation, ample time to kill it after its LV appears (polled every 0.2 s),
    and each copy, hash and wipe of the volume costs half what 1 GiB did."""
    vm = csi_plugin.vm
    size = 512 * MIB
    origin = csi_plugin.controller.CreateVolume(
        req.create_volume("crash-origin", size, THICK, req.block_capability())
    ).volume
    origin_target = "/var/lib/localcsi-test/crash-origin"
    csi_plugin.node.NodePublishVolume(req.publish(origin.volume_id, origin_target, req.block_capability()))
    vm.check(["dd", "if=/dev/urandom", f"of={origin_target}", "bs=1M", "count=256", "oflag=direct", "status=none"])
    expected = sha256_prefix(vm, origin_target, size)
    snapshot = csi_plugin.controller.CreateSnapshot(req.create_snapshot(origin.volume_id, "crash-snap")).snapshot
    before = set(tagged_lvs(vm, THICK_VG))

    request = req.create_volume(
        "crash-restore", size, THICK, req.block_capability(), req.snapshot_source(snapshot.snapshot_id)
    )
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["volume"] = csi_plugin.controller.CreateVolume(request, timeout=600)
        except grpc.RpcError as error:
            outcome["error"] = error.code()

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 120
    while set(tagged_lvs(vm, THICK_VG)) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(tagged_lvs(vm, THICK_VG)) != before, "CreateVolume never created the LV"
    csi_plugin.kill()  # SIGKILL, in the middle of the copy
    caller.join(timeout=60)
    assert "volume" not in outcome, "the create finished before the kill: the copy was too fast to interrupt"

    csi_plugin.start()
    [half_copied] = set(tagged_lvs(vm, THICK_VG)) - before
    tags = vm.check(["lvs", "--noheadings", "-o", "lv_tags", f"{THICK_VG}/{half_copied}"]).stdout.strip().split(",")
    assert CREATING in tags, "the half-copied LV is still marked as being created"
    listed = csi_plugin.controller.ListVolumes(csi_pb2.ListVolumesRequest())
    assert not any(half_copied in entry.volume.volume_id for entry in listed.entries), "a half copy is never listed"
    restored = csi_plugin.controller.CreateVolume(request, timeout=600).volume
    new_lvs = set(tagged_lvs(vm, THICK_VG)) - before
    assert len(new_lvs) == 1, f"expected exactly one new LV after the retry, got {sorted(new_lvs)}"
    target = "/var/lib/localcsi-test/crash-restore"
    csi_plugin.node.NodePublishVolume(req.publish(restored.volume_id, target, req.block_capability()))
    assert sha256_prefix(vm, target, size) == expected, "the retried restore does not hold the snapshot's data"
