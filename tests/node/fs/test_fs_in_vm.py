"""The fs adapter against the real tools in the node VM: what blkid, findmnt, stat, mount, umount,
resize2fs and xfs_growfs really print and do, read back through ``localcsi.fs.adapter.Filesystems``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcsi.testing.install import GUEST_SITE
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-fs"
MIB = 1024**2

PRELUDE = """
import dataclasses, json
from localcsi.core.errors import CoreError
from localcsi.fs.adapter import Filesystems
from localcsi.lvm.runner import SubprocessRunner

fs = Filesystems(SubprocessRunner())

def plain(value):
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)

def attempt(call, *args, **kwargs):
    try:
        return {"ok": True, "value": plain(call(*args, **kwargs))}
    except CoreError as error:
        return {"ok": False, "code": error.code, "message": error.message}

out = {}
"""


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[3])


@pytest.fixture(scope="module")
def vm(installed_vm: NodeVM) -> NodeVM:
    disk = installed_vm.data_disks()[0]
    installed_vm.check(["pvcreate", "-y", disk])
    installed_vm.check(["vgcreate", "-y", VG, disk])
    return installed_vm


def in_guest(vm: NodeVM, body: str) -> dict[str, Any]:
    """Run ``body`` after PRELUDE in the guest; it fills ``out``, which comes back decoded."""
    script = PRELUDE + body + "\nprint(json.dumps(out))\n"
    result = vm.check(["python3", "-c", script], env={"PYTHONPATH": GUEST_SITE}, timeout=600)
    decoded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return decoded


def make_lv(vm: NodeVM, name: str, mib: int) -> str:
    vm.check(["lvcreate", "--yes", "--name", name, "--size", f"{mib}m", "--wipesignatures", "y", VG])
    return f"/dev/{VG}/{name}"


def device_number(vm: NodeVM, name: str) -> dict[str, int]:
    fields = "lv_kernel_major,lv_kernel_minor"
    major, minor = vm.check(["lvs", "--noheadings", "-o", fields, f"{VG}/{name}"]).stdout.split()
    return {"major": int(major), "minor": int(minor)}


def test_probe_finds_every_kind_of_signature(vm: NodeVM) -> None:
    devices = {
        name: make_lv(vm, name, mib)
        for name, mib in [("empty", 32), ("ext4", 32), ("xfs", 320), ("swap", 32), ("pt", 32), ("pv", 32)]
    }
    vm.check(["mkfs.ext4", "-q", devices["ext4"]])
    vm.check(["mkfs.xfs", "-q", devices["xfs"]])
    vm.check(["mkswap", devices["swap"]])
    vm.check(["dd", f"if={vm.data_disks()[0]}", f"of={devices['pv']}", "bs=1M", "count=1", "status=none"])
    mbr = "import struct,sys; m=bytearray(512); m[446:462]=bytes([0,0,2,0,0x83,0,0,0])+struct.pack('<II',2048,4096)"
    vm.check(["python3", "-c", mbr + "; m[510:]=b'\\x55\\xaa'; open(sys.argv[1],'r+b').write(m)", devices["pt"]])
    vm.check(["sh", "-c", "echo not a device > /tmp/plain-file"])
    body = "".join(f"out[{name!r}] = attempt(fs.probe, {path!r})\n" for name, path in devices.items())
    body += "out['missing'] = attempt(fs.probe, '/dev/no-such-device')\n"
    body += "out['file'] = attempt(fs.probe, '/tmp/plain-file')\n"
    probed = in_guest(vm, body)

    assert probed["empty"] == {"ok": True, "value": None}
    assert probed["ext4"]["value"] == {"type": "ext4", "usage": "filesystem"}
    assert probed["xfs"]["value"] == {"type": "xfs", "usage": "filesystem"}
    assert probed["swap"]["value"] == {"type": "swap", "usage": "other"}
    assert probed["pt"]["value"] == {"type": "dos", "usage": "partition table"}
    assert probed["pv"]["value"] == {"type": "LVM2_member", "usage": "raid"}
    for name in ("missing", "file"):
        assert probed[name]["code"] == "FAILED_PRECONDITION", probed[name]
        assert "not a block device" in probed[name]["message"]


def test_mounts_paths_usage_and_unmounting(vm: NodeVM) -> None:
    fs_device, block_device = make_lv(vm, "mnt-fs", 64), make_lv(vm, "mnt-block", 16)
    vm.check(["sh", "-c", "mkdir -p /tmp/kinds/dir && echo data > /tmp/kinds/file && ln -s dir /tmp/kinds/link"])
    seen = in_guest(
        vm,
        f"""
fs.make_filesystem({fs_device!r}, "ext4")
out["signature"] = attempt(fs.probe, {fs_device!r})
fs.make_directory("/mnt/a/b")
fs.mount({fs_device!r}, "/mnt/a/b", "ext4", ["noatime", "nodev"])
out["mount"] = attempt(fs.find_mount, "/mnt/a/b")
out["parent"] = attempt(fs.find_mount, "/mnt/a")
out["usage"] = attempt(fs.usage, "/mnt/a/b")
out["kinds"] = {{path: attempt(fs.path_info, path) for path in
    ["/tmp/kinds/dir", "/tmp/kinds/file", "/tmp/kinds/link", "/tmp/kinds/none", "/mnt/a/b"]}}
fs.make_file("/mnt/dev-file")
fs.bind_mount({block_device!r}, "/mnt/dev-file")
fs.remount_read_only("/mnt/dev-file")
out["block_mount"] = attempt(fs.find_mount, "/mnt/dev-file")
out["block_info"] = attempt(fs.path_info, "/mnt/dev-file")
out["block_size"] = attempt(fs.device_size, "/mnt/dev-file")
""",
    )
    assert seen["signature"]["value"] == {"type": "ext4", "usage": "filesystem"}
    mount = seen["mount"]["value"]
    assert (mount["target"], mount["fs_type"], mount["device"]) == ("/mnt/a/b", "ext4", device_number(vm, "mnt-fs"))
    assert {"rw", "noatime", "nodev"} <= set(mount["options"])
    assert seen["parent"] == {"ok": True, "value": None}, "/mnt/a is a directory, not a mount point"
    fragment, blocks, free, available, inodes, free_inodes = map(
        int, vm.check(["stat", "-f", "-c", "%S %b %f %a %c %d", "/mnt/a/b"]).stdout.split()
    )
    assert seen["usage"]["value"] == {
        "total_bytes": blocks * fragment,
        "available_bytes": available * fragment,
        "used_bytes": (blocks - free) * fragment,
        "total_inodes": inodes,
        "available_inodes": free_inodes,
        "used_inodes": inodes - free_inodes,
    }
    kinds = {path.rpartition("/")[2]: answer["value"] for path, answer in seen["kinds"].items()}
    assert kinds["dir"]["kind"] == "directory" and kinds["b"]["kind"] == "directory"
    assert (kinds["file"]["kind"], kinds["file"]["size_bytes"]) == ("file", 5)
    assert kinds["link"]["kind"] == "symbolic link"
    assert kinds["none"] is None
    assert seen["block_info"]["value"]["kind"] == "block device"
    assert seen["block_info"]["value"]["rdev"] == device_number(vm, "mnt-block")
    assert seen["block_mount"]["value"]["options"][0] == "ro"
    assert seen["block_size"]["value"] == 16 * MIB

    # Unmounting: a busy mount is refused with FAILED_PRECONDITION; a second unmount is a no-op.
    holder = vm.guest.spawn(["sh", "-c", "cd /mnt/a/b && exec sleep 120"], log="/tmp/holder.log")
    try:
        busy = in_guest(vm, 'out["busy"] = attempt(fs.unmount, "/mnt/a/b")')["busy"]
        assert busy["code"] == "FAILED_PRECONDITION" and "busy" in busy["message"], busy
    finally:
        vm.guest.signal(holder, 9, wait=10)
    done = in_guest(
        vm,
        """
out["first"] = attempt(fs.unmount, "/mnt/a/b")
out["second"] = attempt(fs.unmount, "/mnt/a/b")
out["block"] = attempt(fs.unmount, "/mnt/dev-file")
out["file"] = attempt(fs.remove_file, "/mnt/dev-file")
out["file_again"] = attempt(fs.remove_file, "/mnt/dev-file")
out["nonempty"] = attempt(fs.remove_directory, "/mnt/a")
out["empty"] = attempt(fs.remove_directory, "/mnt/a/b")
out["gone"] = attempt(fs.remove_directory, "/mnt/a/b")
""",
    )
    assert [done[key]["value"] for key in ("first", "second", "block")] == [True, False, True]
    assert done["file"]["ok"] and done["file_again"]["ok"] and done["empty"]["ok"] and done["gone"]["ok"]
    assert done["nonempty"]["code"] == "FAILED_PRECONDITION", done["nonempty"]
    assert vm.run(["test", "-e", "/mnt/a/b"]).rc != 0 and vm.run(["test", "-d", "/mnt/a"]).rc == 0


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_resize_grows_a_mounted_filesystem(vm: NodeVM, fs_type: str) -> None:
    device = make_lv(vm, f"resize-{fs_type}", 320)
    target = f"/mnt/resize-{fs_type}"
    before = in_guest(
        vm,
        f"""
fs.make_filesystem({device!r}, {fs_type!r})
fs.make_directory({target!r})
fs.mount({device!r}, {target!r}, {fs_type!r})
out["total"] = fs.usage({target!r}).total_bytes
""",
    )["total"]
    vm.check(["lvextend", "--yes", "--size", "640m", f"{VG}/resize-{fs_type}"])
    after = in_guest(
        vm,
        f"""
out["size"] = fs.device_size({device!r})
fs.resize({fs_type!r}, {device!r}, {target!r})
out["total"] = fs.usage({target!r}).total_bytes
out["again"] = attempt(fs.resize, {fs_type!r}, {device!r}, {target!r})
""",
    )
    assert after["size"] == 640 * MIB
    assert after["total"] > before + 280 * MIB, (before, after["total"])  # of the 320 MiB added
    assert after["again"]["ok"], "growing a filesystem that already fills its device must succeed"
    vm.check(["umount", target])
