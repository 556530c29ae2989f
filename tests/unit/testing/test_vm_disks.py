from __future__ import annotations

from pathlib import Path

import pytest

from localcsi.testing.guest_client import GuestError
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig


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


def test_ssd_disks_are_scsi_disks_that_report_no_rotation() -> None:
    vm = NodeVM(VMConfig(disks_gib=[1], ssd_disks_gib=[1, 2]))
    try:
        assert vm.ssd_disks() == ["/dev/sda", "/dev/sdb"]
        assert vm.data_disks() == ["/dev/vdb"], "the virtio disks keep their names"
        argv = vm._ssd_devices()
        assert argv[:2] == ["-device", "virtio-scsi-pci,id=scsi0"]
        disks = [arg for arg in argv if arg.startswith("scsi-hd,")]
        assert disks == [
            "scsi-hd,drive=ssd0,bus=scsi0.0,scsi-id=0,lun=0,rotation_rate=1",
            "scsi-hd,drive=ssd1,bus=scsi0.0,scsi-id=1,lun=0,rotation_rate=1",
        ]
        assert NodeVM(VMConfig(disks_gib=[1]))._ssd_devices() == [], "no controller without SSD disks"
    finally:
        vm.stop()
