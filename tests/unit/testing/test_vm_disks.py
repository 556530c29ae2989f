from __future__ import annotations

from pathlib import Path

import pytest

from localcsi.testing.guest_client import GuestError
from localcsi.testing.vm import NodeVM, VMConfig


def test_devices_follow_data_disks_then_backed_disks_then_the_files_disk() -> None:
    vm = NodeVM(VMConfig(disks_gib=[1, 1], backed_disks=[Path("/s.img")], files_disk=Path("/f.img")))
    try:
        assert vm.data_disks() == ["/dev/vdb", "/dev/vdc"]
        assert vm.backed_device(0) == "/dev/vdd"
        assert vm.files_device() == "/dev/vde"
        with pytest.raises(GuestError, match="1 backed disks"):
            vm.backed_device(1)
    finally:
        vm.stop()


def test_the_site_disk_comes_last_with_or_without_a_files_disk() -> None:
    for files_disk, device in ((Path("/f.img"), "/dev/vde"), (None, "/dev/vdd")):
        vm = NodeVM(VMConfig(disks_gib=[1, 1], files_disk=files_disk, site_disk=Path("/site.img")))
        try:
            assert vm.site_device() == device
            assert vm._drives()[-1] == "file=/site.img,if=virtio,format=raw,readonly=on"
        finally:
            vm.stop()


def test_a_vm_without_a_files_disk_or_a_site_disk_says_so() -> None:
    vm = NodeVM(VMConfig(disks_gib=[1]))
    try:
        with pytest.raises(GuestError, match="without a files disk"):
            vm.files_device()
        with pytest.raises(GuestError, match="without a site disk"):
            vm.site_device()
    finally:
        vm.stop()
