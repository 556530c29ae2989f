"""NodeExpandVolume and NodeGetVolumeStats on real LVs in the node VM: online growth of ext4 and xfs
under a running writer, block volumes, usage numbers, and a VolumeCondition from a full thin pool."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from node_guest import GIB, MIB, GuestNode, block_cap, create_volume, make_vg, mount_cap

from localcsi.testing.guest_scripts import STEADY_WRITER
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-grow"
POOL = "tiny-pool"
POOL_BYTES = 64 * MIB


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[4])


@pytest.fixture(scope="module")
def node(installed_vm: NodeVM) -> Iterator[GuestNode]:
    make_vg(installed_vm, VG, installed_vm.data_disks()[0])
    installed_vm.guest.put("/tmp/writer.py", STEADY_WRITER.encode())
    yield GuestNode(installed_vm)


def lv_of(volume_id: str) -> str:
    return f"{VG}/{volume_id.rpartition('/')[2]}"


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_online_expansion_while_a_writer_runs(node: GuestNode, fs_type: str) -> None:
    volume_id, _ = create_volume(node.vm, VG, f"grow-{fs_type}", 512 * MIB, fs_type=fs_type)
    target = f"/mnt/grow-{fs_type}"
    node.ok("publish", volume_id, target, capability=mount_cap(fs_type))
    before = node.ok("stats", volume_id, target)["usage"]["total_bytes"]
    assert before < 512 * MIB

    chunks, log = 64, f"/tmp/writer-{fs_type}.out"
    writer = node.vm.guest.spawn(["python3", "/tmp/writer.py", f"{target}/stream", str(chunks), "0.1"], log=log)
    time.sleep(1.0)
    assert node.vm.guest.signal(writer, 0)[0], "the writer finished before the expansion began"
    node.vm.check(["lvextend", "--yes", "--size", f"{GIB}b", lv_of(volume_id)])
    assert node.ok("expand", volume_id, target, required_bytes=GIB) == GIB
    assert node.vm.guest.signal(writer, 0)[0], "the writer was not running during the expansion"
    after = node.ok("stats", volume_id, target)["usage"]["total_bytes"]
    assert after > before + 450 * MIB, (before, after)
    assert node.sh(f"stat -f -c '%S %b' {target}").split() != [], "statvfs must answer while writing"

    alive, rc = node.vm.guest.signal(writer, 0, wait=300)
    assert (alive, rc) == (False, 0), f"writer still running or failed: rc={rc}"
    expected = node.vm.check(["cat", log]).stdout.strip()
    assert len(expected) == 64, f"writer failed: {expected}"
    assert node.sha256(f"{target}/stream") == expected
    assert node.ok("expand", volume_id, target, required_bytes=GIB) == GIB, "a repeated expand must succeed"
    node.ok("unpublish", volume_id, target)


def test_filesystem_and_block_stats_and_expansion_errors(node: GuestNode) -> None:
    volume_id, _ = create_volume(node.vm, VG, "stats-fs", 256 * MIB)
    target = "/mnt/stats-fs"
    node.ok("publish", volume_id, target, capability=mount_cap("ext4"))
    empty = node.ok("stats", volume_id, target)
    node.sh(
        f"dd if=/dev/urandom of={target}/blob bs=1M count=32 conv=fsync status=none && "
        f"mkdir {target}/many && cd {target}/many && touch $(seq 1 200)"
    )
    used = node.ok("stats", volume_id, target)
    fragment, blocks, free, available, inodes, free_inodes = map(
        int, node.sh(f"stat -f -c '%S %b %f %a %c %d' {target}").split()
    )
    assert used["usage"] == {
        "total_bytes": blocks * fragment,
        "available_bytes": available * fragment,
        "used_bytes": (blocks - free) * fragment,
        "total_inodes": inodes,
        "available_inodes": free_inodes,
        "used_inodes": inodes - free_inodes,
    }
    assert used["usage"]["used_bytes"] >= empty["usage"]["used_bytes"] + 32 * MIB
    assert used["usage"]["used_inodes"] >= empty["usage"]["used_inodes"] + 201
    assert (used["abnormal"], used["message"]) == (False, "volume is healthy")
    assert node.call("stats", volume_id, "/mnt/not-there").code == "NOT_FOUND"
    assert node.call("stats", volume_id, "relative/path").code == "NOT_FOUND"
    assert node.call("expand", volume_id, target, required_bytes=GIB).code == "OUT_OF_RANGE"
    assert node.call("expand", volume_id, "/mnt").code == "NOT_FOUND", "/mnt does not hold the volume"
    node.ok("unpublish", volume_id, target)
    assert node.call("stats", volume_id, target).code == "NOT_FOUND", "an unpublished volume has no stats"

    block_id, _ = create_volume(node.vm, VG, "stats-block", 128 * MIB)
    block_target = "/mnt/stats-block/dev"
    node.ok("publish", block_id, block_target, capability=block_cap())
    assert node.ok("stats", block_id, block_target) == {
        "total_bytes": 128 * MIB,
        "usage": None,
        "abnormal": False,
        "message": "volume is healthy",
    }
    node.vm.check(["lvextend", "--yes", "--size", "192m", lv_of(block_id)])
    assert node.ok("expand", block_id, block_target, required_bytes=192 * MIB) == 192 * MIB
    assert node.ok("stats", block_id, block_target)["total_bytes"] == 192 * MIB
    assert node.sh(f"blockdev --getsize64 {block_target}").strip() == str(192 * MIB)
    node.ok("unpublish", block_id, block_target)


def test_a_full_thin_pool_makes_the_volume_abnormal(node: GuestNode) -> None:
    node.vm.check(["lvcreate", "--yes", "--type", "thin-pool", "--size", f"{POOL_BYTES}b", "--name", POOL, VG])
    node.vm.check(["lvchange", "--errorwhenfull", "y", f"{VG}/{POOL}"])  # fail writes at once, no 60 s queue
    volume_id, _ = create_volume(node.vm, VG, "thin-filler", 256 * MIB, thin_pool=POOL, access="block")
    target = "/mnt/thin/dev"
    node.ok("publish", volume_id, target, capability=block_cap())
    healthy = node.ok("stats", volume_id, target)
    assert (healthy["abnormal"], healthy["total_bytes"]) == (False, 256 * MIB)

    # Overcommitted 4:1: writing past the pool's 64 MiB fails.
    filled = node.vm.run(["dd", "if=/dev/urandom", f"of={target}", "bs=1M", "count=128", "oflag=direct"])
    assert filled.rc != 0, "writing past a full thin pool should fail"
    pool_full = node.sh(f"lvs --noheadings -o data_percent {VG}/{POOL}").strip()
    assert float(pool_full) == 100.0, pool_full
    full = node.ok("stats", volume_id, target)
    assert full["abnormal"] is True
    assert "thin pool is out of data space" in full["message"], full["message"]
    node.ok("unpublish", volume_id, target)
