"""Device and MountPoint volumes on real disks in the node VM: the standalone plugin with ``--device``
and ``--mount-point``.

Device: vdb (1 GiB) carries an ext4 filesystem with a file, vdc (1 GiB) and vdd (2 GiB) are blank,
vde (1 GiB) is not given to the plugin. The plugin must never hand out vdb or vde, must give each
volume the smallest blank disk that fits, and must leave a deleted volume's disk blank, so that the
next claim reads zeroes only. MountPoint: vdf and vdg are ext4 filesystems mounted at /mnt/mp/a and
/mnt/mp/b; b holds a file, so only a is free. The agent's mount point initialisation makes a
filesystem on blank vdh, refuses vdb, and its mount comes back after a reboot (the last test).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import grpc
import pytest

from localcsi.core.exclusive import usable_bytes
from localcsi.csi import csi_pb2
from localcsi.testing import crash_points
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import GIB, MIB
from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import GUEST_SITE, install_project, site_disk
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

pytestmark = pytest.mark.node

DISKS_GIB = [1, 1, 2, 1, 1, 1, 1]
DEVICE = {"volumeType": "Device"}
MOUNT_POINT = {"volumeType": "MountPoint"}
FOREIGN, SMALL, LARGE, NOT_GIVEN = "/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"
FREE_MP, TAKEN_MP = "/mnt/mp/a", "/mnt/mp/b"


@pytest.fixture(scope="module")
def plugin(vm_phases: Phases) -> Iterator[GuestPlugin]:
    vm = NodeVM(VMConfig(disks_gib=DISKS_GIB, port_forwards={PLUGIN_TCP_PORT: 0}, site_disk=site_disk()), vm_phases)
    try:
        vm.start()
        install_project(vm)
        vm.check(["mkfs.ext4", "-q", FOREIGN])
        vm.check(["mkdir", "-p", "/mnt/foreign"])
        vm.check(["mount", FOREIGN, "/mnt/foreign"])
        vm.check(["dd", "if=/dev/urandom", "of=/mnt/foreign/data", "bs=1M", "count=4", "conv=fsync", "status=none"])
        vm.check(["umount", "/mnt/foreign"])
        for disk, path in (("/dev/vdf", FREE_MP), ("/dev/vdg", TAKEN_MP)):
            vm.check(["mkfs.ext4", "-q", disk])
            vm.check(["mkdir", "-p", path])
            vm.check(["mount", disk, path])
        vm.check(["python3", "-c", f"open('{TAKEN_MP}/keep', 'w').write('not yours')"])
        devices = ("--device", FOREIGN, "--device", SMALL, "--device", LARGE, "--mount-point", "/mnt/mp/*")
        env = crash_points.install(vm, ("lvcreate", "pvremove"))
        guest = GuestPlugin(vm, extra_args=devices, env=env).start()
        yield guest
        guest.stop()
    finally:
        vm.stop()


def disk_of(vm: NodeVM, volume_id: str) -> str:
    """The disk under a Device volume, from lvm2 (the id names the volume's own VG)."""
    vg = volume_id.split("/")[1]
    return vm.check(["pvs", "--noheadings", "-o", "pv_name", "--select", f"vg_name={vg}"]).stdout.strip()


def lv_path(volume_id: str) -> str:
    _, vg, lv = volume_id.split("/")
    return f"/dev/{vg}/{lv}"


def signature(vm: NodeVM, device: str) -> str:
    return vm.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device]).stdout.strip()


def delete(plugin: GuestPlugin, volume_id: str) -> None:
    plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


def blank_sha256(size: int) -> str:
    """sha256 of `size` zero bytes, a MiB at a time (not `size` bytes held at once)."""
    digest, zeros = hashlib.sha256(), bytes(MIB)
    for _ in range(size // MIB):
        digest.update(zeros)
    return digest.hexdigest()


def test_a_disk_with_a_filesystem_is_refused_and_the_smallest_blank_one_given(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    digest = vm.data_disk_sha256(FOREIGN)
    assert digest != blank_sha256(GIB), "the digest does not see the foreign filesystem"
    volume = plugin.controller.CreateVolume(req.create_volume("dev-small", 512 * MIB, DEVICE)).volume
    try:
        assert disk_of(vm, volume.volume_id) == SMALL, "not the smallest blank disk that fits"
        # The whole disk less lvm2's first MiB, in 4 MiB extents (docs/exclusive-volumes.md).
        assert volume.capacity_bytes == usable_bytes(GIB) == 1020 * MIB
        again = plugin.controller.CreateVolume(req.create_volume("dev-small", 512 * MIB, DEVICE)).volume
        assert again.volume_id == volume.volume_id, "a retry must find the first attempt's disk"
        assert signature(vm, FOREIGN) == "ext4" and vm.data_disk_sha256(FOREIGN) == digest
        assert signature(vm, NOT_GIVEN) == "" and vm.run(["pvs", NOT_GIVEN]).rc != 0, "a disk not given was touched"

        # The only blank disk left is 2 GiB: a 1.5 GiB volume gets it, and nothing is left for a third.
        large = plugin.controller.CreateVolume(req.create_volume("dev-large", 1536 * MIB, DEVICE)).volume
        assert large.capacity_bytes == usable_bytes(2 * GIB) == 2044 * MIB
        assert disk_of(vm, large.volume_id) == LARGE
        with pytest.raises(grpc.RpcError) as exhausted:
            plugin.controller.CreateVolume(req.create_volume("dev-none", 16 * MIB, DEVICE))
        assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "ext4" in (exhausted.value.details() or ""), "the refusal should say why the foreign disk is not free"
        delete(plugin, large.volume_id)
    finally:
        delete(plugin, volume.volume_id)
    assert signature(vm, FOREIGN) == "ext4" and vm.data_disk_sha256(FOREIGN) == digest


def test_media_type_is_honoured(plugin: GuestPlugin) -> None:
    """virtio-blk disks all report the same rotational flag (qemu gives no way to vary it), so the
    proof is one-sided: the media type they have is served, the other one is refused."""
    vm = plugin.vm
    rotational = vm.check(["cat", "/sys/block/vdc/queue/rotational"]).stdout.strip() == "1"
    have, lack = ("hdd", "ssd") if rotational else ("ssd", "hdd")
    with pytest.raises(grpc.RpcError) as refused:
        plugin.controller.CreateVolume(req.create_volume("dev-lack", 16 * MIB, {**DEVICE, "mediaType": lack}))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    capacity = plugin.controller.GetCapacity(csi_pb2.GetCapacityRequest(parameters={**DEVICE, "mediaType": lack}))
    assert capacity.available_capacity == 0
    capacity = plugin.controller.GetCapacity(csi_pb2.GetCapacityRequest(parameters={**DEVICE, "mediaType": have}))
    assert capacity.available_capacity == usable_bytes(GIB) + usable_bytes(2 * GIB)
    assert capacity.maximum_volume_size.value == usable_bytes(2 * GIB)
    volume = plugin.controller.CreateVolume(req.create_volume("dev-have", 16 * MIB, {**DEVICE, "mediaType": have}))
    delete(plugin, volume.volume.volume_id)


def test_a_deleted_device_reads_zeroes_for_the_next_claim(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    first = plugin.controller.CreateVolume(req.create_volume("tenant-a", 512 * MIB, DEVICE)).volume
    target = "/mnt/tenant-a"
    plugin.node.NodePublishVolume(req.publish(first.volume_id, target))
    assert vm.check(["findmnt", "-n", "-o", "FSTYPE", target]).stdout.strip() == "ext4"
    vm.check(["dd", "if=/dev/urandom", f"of={target}/secret", "bs=1M", "count=32", "conv=fsync", "status=none"])
    stats = plugin.node.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(volume_id=first.volume_id,
                                                                             volume_path=target))  # fmt: skip
    assert stats.usage[0].used >= 32 * MIB
    with pytest.raises(grpc.RpcError) as grow:
        plugin.controller.ControllerExpandVolume(req.expand(first.volume_id, 2 * GIB))
    assert grow.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as snapshot:
        plugin.controller.CreateSnapshot(req.create_snapshot(first.volume_id, "dev-snap"))
    assert snapshot.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as in_use:
        delete(plugin, first.volume_id)
    assert in_use.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    plugin.node.NodeUnpublishVolume(req.unpublish(first.volume_id, target))
    disk = disk_of(vm, first.volume_id)
    delete(plugin, first.volume_id)
    delete(plugin, first.volume_id)  # repeated: nothing left to do
    assert signature(vm, disk) == "" and vm.run(["pvs", disk]).rc != 0, "the disk is not blank again"
    size = int(vm.check(["blockdev", "--getsize64", disk]).stdout)
    for offset in (0, size - MIB):
        assert vm.run(["cmp", "-n", str(MIB), f"--ignore-initial={offset}:0", disk, "/dev/zero"]).rc == 0

    block_request = req.create_volume("tenant-b", 512 * MIB, DEVICE, req.block_capability())
    second = plugin.controller.CreateVolume(block_request).volume
    try:
        assert disk_of(vm, second.volume_id) == disk, "the blank disk went back to the pool"
        block = "/mnt/tenant-b-block"
        plugin.node.NodePublishVolume(req.publish(second.volume_id, block, req.block_capability()))
        length = second.capacity_bytes
        assert vm.run(["cmp", "-n", str(length), block, "/dev/zero"], timeout=600).rc == 0, "old data is readable"
        plugin.node.NodeUnpublishVolume(req.unpublish(second.volume_id, block))
    finally:
        delete(plugin, second.volume_id)


def test_a_kill_between_vgcreate_and_lvcreate_or_before_pvremove_converges(plugin: GuestPlugin) -> None:
    """Killed after vgcreate, the retry finds the VG (so the disk) of the first attempt; killed after
    lvremove, the retried delete finishes: the disk is blank and free again."""
    vm = plugin.vm
    request = req.create_volume("dev-crash", 16 * MIB, DEVICE)
    crash_points.crash_at(plugin, "lvcreate", lambda: plugin.controller.CreateVolume(request, timeout=120))
    vg = vm.check(["pvs", "--noheadings", "-o", "vg_name", SMALL]).stdout.strip()
    assert vg.startswith("localcsi-dev-") and vm.run(["lvs", "--noheadings", vg]).stdout.strip() == ""
    volume = plugin.controller.CreateVolume(request).volume
    assert volume.volume_id.split("/")[1] == vg and disk_of(vm, volume.volume_id) == SMALL

    delete_request = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)
    crash_points.crash_at(plugin, "pvremove", lambda: plugin.controller.DeleteVolume(delete_request, timeout=120))
    assert vm.run(["lvs", "--noheadings", vg]).rc == 0, "the VG outlives its LV until the retry"
    delete(plugin, volume.volume_id)
    assert signature(vm, SMALL) == "" and vm.run(["pvs", SMALL]).rc != 0
    assert vm.run(["cmp", "-n", str(MIB), SMALL, "/dev/zero"]).rc == 0


def test_a_mount_point_volume_is_bound_into_the_pod_and_emptied_without_escaping(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    fragment, blocks = vm.check(["stat", "-f", "-c", "%S %b", FREE_MP]).stdout.split()
    total = int(fragment) * int(blocks)
    capacity = plugin.controller.GetCapacity(csi_pb2.GetCapacityRequest(parameters=MOUNT_POINT))
    assert capacity.available_capacity == total, "only the empty mount point is offered, with its size"
    with pytest.raises(grpc.RpcError) as block:
        plugin.controller.CreateVolume(req.create_volume("mp-block", MIB, MOUNT_POINT, req.block_capability()))
    assert block.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    volume = plugin.controller.CreateVolume(req.create_volume("mp-1", 64 * MIB, MOUNT_POINT)).volume
    assert volume.capacity_bytes == total
    with pytest.raises(grpc.RpcError) as second:
        plugin.controller.CreateVolume(req.create_volume("mp-2", MIB, MOUNT_POINT))
    assert second.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "the mount point with a file is not free"

    target = "/mnt/pod-mp"
    plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))  # a retry changes nothing
    assert vm.run(["test", "-e", f"{target}/.localcsi-owner"]).rc != 0, "the owner marker is in the pod's view"
    stats = plugin.node.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id,
                                                                             volume_path=target))  # fmt: skip
    assert stats.usage[0].total == total
    # What a pod may leave behind: data, nested directories, and symbolic links out of the mount point.
    vm.check(["mkdir", "-p", "/mnt/outside/dir", f"{target}/nested/deeper"])
    vm.check(["python3", "-c", "open('/mnt/outside/secret', 'w').write('outside');"
              "open('/mnt/outside/dir/inner', 'w').write('inner')"])  # fmt: skip
    vm.check(["dd", "if=/dev/urandom", f"of={target}/nested/deeper/data", "bs=1M", "count=4", "status=none"])
    for link, points_to in (("file-link", "/mnt/outside/secret"), ("dir-link", "/mnt/outside"),
                            ("nested/up-link", "/mnt/outside/dir"), ("taken-link", TAKEN_MP)):  # fmt: skip
        vm.check(["ln", "-s", points_to, f"{target}/{link}"])
    with pytest.raises(grpc.RpcError) as published:
        delete(plugin, volume.volume_id)
    assert published.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    assert vm.run(["findmnt", target]).rc != 0 and vm.run(["test", "-e", target]).rc != 0
    delete(plugin, volume.volume_id)
    delete(plugin, volume.volume_id)  # repeated: nothing left to do
    assert vm.check(["cat", "/mnt/outside/secret"]).stdout == "outside"
    assert vm.check(["cat", "/mnt/outside/dir/inner"]).stdout == "inner"
    assert vm.check(["cat", f"{TAKEN_MP}/keep"]).stdout == "not yours"
    assert vm.check(["ls", "-A", FREE_MP]).stdout.split() == ["lost+found"], "the mount point is not empty again"
    assert vm.run(["findmnt", FREE_MP]).rc == 0, "the mount point itself stays mounted"
    again = plugin.controller.CreateVolume(req.create_volume("mp-3", MIB, MOUNT_POINT)).volume
    assert vm.check(["ls", "-A", f"{FREE_MP}/localcsi-volume"]).stdout == "", "a new tenant sees old files"
    delete(plugin, again.volume_id)


INIT_SCRIPT = """
import json, sys
from localcsi.agent.mountpoint_init import MountPointInitializer
from localcsi.core.mountpoint_init import MountPointToInit
from localcsi.lvm.runner import SubprocessRunner
entries = [MountPointToInit(p, d, f, tuple(o)) for p, d, f, o in json.loads(sys.argv[1])]
initializer = MountPointInitializer(SubprocessRunner())
print(json.dumps({r.path: [r.ready, r.reason] for r in map(initializer.ensure, entries)}))
"""
INIT_OK, INIT_REFUSED = "/mnt/init/ok", "/mnt/init/refused"


def init_mount_points(vm: NodeVM) -> dict[str, list[object]]:
    entries = [(INIT_OK, "/dev/vdh", "xfs", ["noatime"]), (INIT_REFUSED, FOREIGN, "ext4", [])]
    out = vm.check(["env", f"PYTHONPATH={GUEST_SITE}", "python3", "-c", INIT_SCRIPT, json.dumps(entries)]).stdout
    result: dict[str, list[object]] = json.loads(out)
    return result


def test_mount_point_initialisation_formats_only_a_blank_device_and_survives_a_reboot(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    digest = vm.data_disk_sha256(FOREIGN)
    result = init_mount_points(vm)
    assert result[INIT_OK] == [True, ""]
    assert result[INIT_REFUSED][0] is False and "ext4" in str(result[INIT_REFUSED][1])
    assert vm.data_disk_sha256(FOREIGN) == digest, "a device with a signature was written"
    assert vm.check(["findmnt", "-n", "-o", "FSTYPE,SOURCE", INIT_OK]).stdout.split() == ["xfs", "/dev/vdh"]
    assert "noatime" in vm.check(["findmnt", "-n", "-o", "OPTIONS", INIT_OK]).stdout
    uuid = vm.check(["blkid", "-p", "-o", "value", "-s", "UUID", "/dev/vdh"]).stdout.strip()
    fstab = vm.check(["cat", "/etc/fstab"]).stdout
    assert f"UUID={uuid} {INIT_OK} xfs noatime,nofail 0 2 # localcsi.io" in fstab.splitlines()
    vm.check(["python3", "-c", f"open('{INIT_OK}/kept', 'w').write('across reboots')"])
    assert init_mount_points(vm)[INIT_OK] == [True, ""], "a second run changes nothing"
    assert vm.check(["cat", "/etc/fstab"]).stdout == fstab

    plugin.stop()
    vm.reboot()
    plugin.start()
    # The VM's init reads no fstab (a systemd node would mount the line at boot): `mount <path>`, as the
    # agent's next cycle runs it, mounts it through the line written before the reboot.
    assert init_mount_points(vm)[INIT_OK] == [True, ""]
    assert vm.check(["findmnt", "-n", "-o", "FSTYPE", INIT_OK]).stdout.strip() == "xfs"
    assert vm.check(["blkid", "-p", "-o", "value", "-s", "UUID", "/dev/vdh"]).stdout.strip() == uuid, "reformatted"
    assert vm.check(["cat", f"{INIT_OK}/kept"]).stdout == "across reboots"
    assert vm.data_disk_sha256(FOREIGN) == digest
