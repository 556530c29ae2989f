"""NodePublish/NodeUnpublish on real LVs in the node VM: filesystems, block, read-only, mount flags,
idempotency, and never reformatting a device that carries any signature."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from node_guest import MIB, GuestNode, block_cap, create_volume, make_vg, mount_cap

from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-pub"


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[4])


@pytest.fixture(scope="module")
def node(installed_vm: NodeVM) -> Iterator[GuestNode]:
    make_vg(installed_vm, VG, installed_vm.data_disks()[0])
    yield GuestNode(installed_vm)


def write_random(node: GuestNode, path: str, mib: int) -> str:
    node.sh(f"dd if=/dev/urandom of={path} bs=1M count={mib} conv=fsync status=none")
    return node.sha256(path)


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_filesystem_volume_round_trip_keeps_data(node: GuestNode, fs_type: str) -> None:
    volume_id, device = create_volume(node.vm, VG, f"round-trip-{fs_type}", 512 * MIB)
    target = f"/mnt/pods/{fs_type}/volume"
    assert not node.exists(target)

    node.ok("publish", volume_id, target, capability=mount_cap(fs_type))
    source, _, mounted_type, options, *_ = node.mount_line(target)
    assert (mounted_type, options.split(",")[0]) == (fs_type, "rw")
    assert node.blkid_type(device) == fs_type
    uuid = node.sh(f"blkid -p -o value -s UUID {device}").strip()
    digest = write_random(node, f"{target}/data", 16)
    assert node.publish(volume_id, target, mount_cap(fs_type)).ok, "a repeated publish must succeed"
    assert node.sh(f"grep -c ' {target} ' /proc/mounts").strip() == "1", "a repeated publish mounted twice"

    node.ok("unpublish", volume_id, target)
    assert not node.mounted(target)
    assert not node.exists(target), "unpublish must remove the target it created"
    node.ok("unpublish", volume_id, target)  # idempotent: nothing left to do

    node.ok("publish", volume_id, target, capability=mount_cap(""))  # no fs_type: whatever the volume holds
    assert node.mount_line(target)[2] == fs_type
    assert node.sh(f"blkid -p -o value -s UUID {device}").strip() == uuid, f"{source} was reformatted"
    assert node.sha256(f"{target}/data") == digest
    node.ok("unpublish", volume_id, target)


def test_read_only_publishes_and_mount_flags(node: GuestNode) -> None:
    volume_id, _ = create_volume(node.vm, VG, "flags", 256 * MIB)
    writable, read_only, reader = "/mnt/flags/rw", "/mnt/flags/ro", "/mnt/flags/reader"
    assert node.publish(volume_id, writable, mount_cap("ext4", ("noatime", "nodev,nosuid"))).ok
    options = node.mount_line(writable)[3].split(",")
    assert {"rw", "noatime", "nodev", "nosuid"} <= set(options), options
    digest = write_random(node, f"{writable}/shared", 4)

    assert node.publish(volume_id, read_only, mount_cap("ext4"), readonly=True).ok
    assert node.publish(volume_id, reader, mount_cap("ext4", mode="SINGLE_NODE_READER_ONLY")).ok
    for path in (read_only, reader):
        assert node.mount_line(path)[3].split(",")[0] == "ro"
        refused = node.vm.run(["touch", f"{path}/new-file"])
        assert refused.rc != 0 and "Read-only file system" in refused.stderr
        assert node.sha256(f"{path}/shared") == digest
    assert node.mount_line(writable)[3].split(",")[0] == "rw", "read-only publish made the other one read-only"

    # The same target again, but asking for something else: ALREADY_EXISTS, and nothing changes.
    mismatches = [
        (read_only, mount_cap("ext4"), False),
        (writable, mount_cap("ext4", ("noatime", "nodev", "nosuid", "noexec")), False),
        (writable, mount_cap("xfs"), False),
        (writable, block_cap(), False),
    ]
    for path, capability, readonly in mismatches:
        answer = node.publish(volume_id, path, capability, readonly)
        assert answer.code == "ALREADY_EXISTS", (path, capability, answer)
    other_id, _ = create_volume(node.vm, VG, "flags-other", 64 * MIB)
    assert node.publish(other_id, writable, mount_cap("ext4")).code == "ALREADY_EXISTS"
    assert node.mount_line(writable)[3].split(",")[:2] == ["rw", "nosuid"]

    refused_flag = node.publish(volume_id, "/mnt/flags/bad", mount_cap("ext4", ("bind",)))
    assert refused_flag.code == "INVALID_ARGUMENT"
    assert not node.exists("/mnt/flags/bad")
    for path in (writable, read_only, reader):
        node.ok("unpublish", volume_id, path)
        assert not node.exists(path)


def test_block_volume_round_trip(node: GuestNode) -> None:
    volume_id, device = create_volume(node.vm, VG, "raw", 64 * MIB, access="block")
    target = "/mnt/raw/dev/volume"  # parent directories do not exist yet
    assert node.publish(volume_id, target, block_cap()).ok
    assert node.sh(f"stat -c %F {target}").strip() == "block special file"
    assert node.sh(f"blockdev --getsize64 {target}").strip() == str(64 * MIB)
    node.sh(
        f"dd if=/dev/urandom of=/tmp/raw.bin bs=1M count=8 status=none && "
        f"dd if=/tmp/raw.bin of={target} bs=1M oflag=direct conv=notrunc status=none"
    )
    written = node.sha256("/tmp/raw.bin")
    assert node.sha256(target, 8 * MIB) == written
    assert node.sha256(device, 8 * MIB) == written, "the target is not the volume's device"
    assert node.publish(volume_id, target, block_cap()).ok

    node.ok("unpublish", volume_id, target)
    assert not node.exists(target)
    assert node.sha256(device, 8 * MIB) == written

    # Raw data carries no signature: publishing it as a filesystem would format it.
    answer = node.publish(volume_id, "/mnt/raw/fs", mount_cap("ext4"))
    assert answer.code == "FAILED_PRECONDITION", answer
    assert node.blkid_type(device) == ""
    assert node.sha256(device, 8 * MIB) == written

    # A bind-mounted node does not hold the LV open: if the LV is deleted first, unpublish still cleans up.
    node.ok("publish", volume_id, target, capability=block_cap())
    node.vm.check(["lvremove", "--yes", device])
    node.ok("unpublish", volume_id, target)
    assert not node.mounted(target) and not node.exists(target)


def test_a_device_with_any_signature_is_never_formatted(node: GuestNode) -> None:
    # A filesystem made outside the driver, with data: used as it is.
    volume_id, device = create_volume(node.vm, VG, "existing-fs", 128 * MIB)
    node.sh(f"mkfs.ext4 -q {device} && mkdir -p /tmp/seed && mount {device} /tmp/seed")
    digest = write_random(node, "/tmp/seed/data", 8)
    node.sh("umount /tmp/seed")
    assert node.publish(volume_id, "/mnt/existing", mount_cap("")).ok
    assert node.sha256("/mnt/existing/data") == digest
    node.ok("unpublish", volume_id, "/mnt/existing")
    answer = node.publish(volume_id, "/mnt/existing-xfs", mount_cap("xfs"))
    assert answer.code == "FAILED_PRECONDITION" and "never reformatted" in answer.message, answer
    assert node.blkid_type(device) == "ext4"
    assert not node.mounted("/mnt/existing-xfs")

    # Signatures that are not filesystems: swap, a partition table, an LVM physical volume.
    disk = node.vm.data_disks()[0]
    writers = {
        "swap": "mkswap {dev}",
        "dos": (
            'python3 -c "import struct; m=bytearray(512); '
            "m[446:462]=bytes([0,0,2,0,0x83,0,0,0])+struct.pack('<II',2048,4096); m[510:]=b'\\x55\\xaa'; "
            "open('{dev}','r+b').write(m)\""
        ),
        "LVM2_member": f"dd if={disk} of={{dev}} bs=1M count=1 conv=fsync status=none",
    }
    for expected, write in writers.items():
        volume_id, device = create_volume(node.vm, VG, f"signature-{expected}", 64 * MIB)
        node.sh(write.format(dev=device))
        before = node.sha256(device)
        found = node.sh(f"blkid -p -o export {device}")
        assert f"TYPE={expected}" in found, found
        answer = node.publish(volume_id, f"/mnt/sig-{expected}", mount_cap(""))
        assert answer.code == "FAILED_PRECONDITION" and "never formatted" in answer.message, answer
        assert node.sha256(device) == before, f"the {expected} device was changed"
        assert not node.mounted(f"/mnt/sig-{expected}")


def test_lookup_failures_and_an_inactive_volume(node: GuestNode) -> None:
    volume_id, device = create_volume(node.vm, VG, "sleeper", 64 * MIB)
    missing = volume_id[:-4] + "0000"
    assert node.publish(missing, "/mnt/nope", mount_cap("ext4")).code == "NOT_FOUND"
    assert node.publish("node-2" + volume_id.removeprefix("node-1"), "/mnt/nope", mount_cap()).code == "NOT_FOUND"
    # An LV with a volume's name but without this driver's tags is not a volume: never touch it.
    lv_name = volume_id.rpartition("/")[2][:-4] + "ffff"
    node.vm.check(["lvcreate", "--yes", "--name", lv_name, "--size", "64m", VG])
    assert node.publish(f"node-1/{VG}/{lv_name}", "/mnt/nope", mount_cap()).code == "NOT_FOUND"
    assert node.blkid_type(f"/dev/{VG}/{lv_name}") == ""
    assert not node.exists("/mnt/nope")
    assert node.call("unpublish", missing, "/mnt/nope").ok, "unpublishing what is not there is OK"

    node.vm.check(["lvchange", "--activate", "n", f"{VG}/{volume_id.rpartition('/')[2]}"])
    assert not node.exists(device)
    assert node.publish(volume_id, "/mnt/sleeper", mount_cap("ext4")).ok, "an inactive volume is activated"
    assert node.mount_line("/mnt/sleeper")[2] == "ext4"
    node.ok("unpublish", volume_id, "/mnt/sleeper")
