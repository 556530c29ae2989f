"""Device volumes' pure rules: VG names, usable size, disk selection and the pick."""

from __future__ import annotations

import pytest

from localcsi.core.errors import InvalidArgument, ResourceExhausted
from localcsi.core.exclusive import (
    Disk,
    choose_disk,
    device_vg_name,
    disk_tag_value,
    is_device_vg,
    selected,
    usable_bytes,
    validate_device_patterns,
)
from localcsi.core.params import MediaType
from localcsi.core.sizes import GiB, MiB

pytestmark = pytest.mark.unit


def test_the_vg_name_is_derived_from_the_csi_name_and_valid_for_lvm() -> None:
    name = device_vg_name("pvc-0123")
    assert name == device_vg_name("pvc-0123") != device_vg_name("pvc-0124")
    assert is_device_vg(name) and name.startswith("localcsi-dev-") and len(name) == len("localcsi-dev-") + 20
    assert not is_device_vg("localcsi-pool-0")
    with pytest.raises(InvalidArgument):
        device_vg_name("")


def test_usable_size_leaves_lvms_first_mib_and_whole_extents() -> None:
    assert usable_bytes(GiB) == 1020 * MiB
    assert usable_bytes(2 * GiB) == 2044 * MiB
    assert usable_bytes(4 * MiB) == 0
    assert usable_bytes(0) == 0


def test_patterns_match_any_path_of_a_disk() -> None:
    assert selected(["/dev/vdb", "/dev/disk/by-id/virtio-data1"], ["/dev/disk/by-id/virtio-data*"])
    assert not selected(["/dev/vdb"], ["/dev/vdc", "/dev/sd*"])
    assert validate_device_patterns(["/dev/vd[bc]"]) == ("/dev/vd[bc]",)
    with pytest.raises(InvalidArgument):
        validate_device_patterns(["vdb"])


def test_disk_tag_values_keep_only_lvm_tag_characters() -> None:
    assert disk_tag_value("/dev/disk/by-id/ata-Samsung_SSD_850_S21") == "/dev/disk/by-id/ata-Samsung_SSD_850_S21"
    assert disk_tag_value("/dev/disk/by-id/odd name") is None


DISKS = [
    Disk("/dev/vdb", GiB, rotational=False, problem="blkid finds ext4 (filesystem) on it"),
    Disk("/dev/vdc", 4 * GiB, rotational=True, stable_paths=("/dev/disk/by-id/virtio-c",)),
    Disk("/dev/vdd", 2 * GiB, rotational=False),
    Disk("/dev/vde", 2 * GiB, rotational=False, owner_vg="localcsi-dev-0"),
    Disk("/dev/vdf", 8 * GiB, rotational=False),
]


def test_the_smallest_free_disk_that_fits_is_chosen() -> None:
    assert choose_disk(DISKS, 512 * MiB, 0, None).path == "/dev/vdd"
    assert choose_disk(DISKS, 2044 * MiB, 0, None).path == "/dev/vdd"  # exactly the usable size
    assert choose_disk(DISKS, 2045 * MiB, 0, None).path == "/dev/vdc"
    assert choose_disk(DISKS, 0, 0, None).path == "/dev/vdd"


def test_media_type_and_limit_narrow_the_choice() -> None:
    assert choose_disk(DISKS, MiB, 0, MediaType.HDD).path == "/dev/vdc"
    assert choose_disk(DISKS, 3 * GiB, 0, MediaType.SSD).path == "/dev/vdf"
    with pytest.raises(ResourceExhausted):
        choose_disk(DISKS, 5 * GiB, 0, MediaType.HDD)
    with pytest.raises(ResourceExhausted):
        choose_disk(DISKS, 3 * GiB, 3584 * MiB, None)  # vdc gives 4092 MiB: over the limit
    assert choose_disk(DISKS, 3 * GiB, 4 * GiB, None).path == "/dev/vdc"


def test_a_refusal_says_what_each_disk_is() -> None:
    with pytest.raises(ResourceExhausted) as refused:
        choose_disk(DISKS, 16 * GiB, 0, None)
    message = refused.value.message
    assert "ext4" in message and "localcsi-dev-0" in message and "/dev/disk/by-id/virtio-c" in message
    with pytest.raises(ResourceExhausted, match="no disk is given"):
        choose_disk([], MiB, 0, None)
