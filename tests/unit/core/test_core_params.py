from fractions import Fraction

import pytest

from localcsi.core.errors import InvalidArgument
from localcsi.core.iolimits import IoLimits
from localcsi.core.params import (
    DEFAULT_SNAPSHOT_SIZE,
    DEFAULT_THIN_POOL,
    FsType,
    LvmType,
    MediaType,
    SnapshotSize,
    VolumeParams,
    VolumeType,
    parse_snapshot_params,
    parse_snapshot_size,
    parse_volume_params,
)
from localcsi.core.sizes import KiB, MiB

pytestmark = pytest.mark.unit


def test_empty_parameters_mean_a_linear_lvm_volume() -> None:
    assert parse_volume_params({}) == VolumeParams()
    assert VolumeParams().volume_type is VolumeType.LVM
    assert VolumeParams().lvm_type is LvmType.LINEAR


def test_a_full_striping_storage_class() -> None:
    params = parse_volume_params(
        {
            "volumeType": "LVM",
            "vgName": "pool-0",
            "lvmType": "striping",
            "stripes": "3",
            "stripeSize": "64Ki",
            "csi.storage.k8s.io/fstype": "xfs",
            "bps": "1Mi",
            "iops": "1024",
        }
    )
    assert params == VolumeParams(
        vg_name="pool-0",
        lvm_type=LvmType.STRIPING,
        stripes=3,
        stripe_size_bytes=64 * KiB,
        fs_type=FsType.XFS,
        io_limits=IoLimits((("bps", MiB), ("iops", 1024))),
    )


def test_thin_gets_the_default_pool_and_ratio() -> None:
    params = parse_volume_params({"lvmType": "thin"})
    assert params.thin_pool == DEFAULT_THIN_POOL
    assert params.overprovisioning_ratio == 1


def test_thin_pool_and_ratio_are_read() -> None:
    params = parse_volume_params({"lvmType": "thin", "thinPool": "pool1", "overProvisioningRatio": "2.5"})
    assert params.thin_pool == "pool1"
    assert params.overprovisioning_ratio == Fraction(5, 2)


def test_values_are_case_insensitive_like_open_local_templates() -> None:
    params = parse_volume_params({"volumeType": "lvm", "lvmType": "RAID1"})
    assert params.volume_type is VolumeType.LVM and params.lvm_type is LvmType.RAID1
    device = parse_volume_params({"volumeType": "Device", "mediaType": "SSD"})
    assert device.media_type is MediaType.SSD


def test_sidecar_keys_are_ignored() -> None:
    params = parse_volume_params(
        {
            "csi.storage.k8s.io/pvc/name": "data",
            "csi.storage.k8s.io/pvc/namespace": "default",
            "csi.storage.k8s.io/pv/name": "pvc-1",
            "csi.storage.k8s.io/provisioner-secret-name": "x",
        }
    )
    assert params == VolumeParams()


def test_legacy_fstype_key_is_accepted_and_must_agree() -> None:
    assert parse_volume_params({"fsType": "xfs"}).fs_type is FsType.XFS
    assert parse_volume_params({"fsType": "xfs", "csi.storage.k8s.io/fstype": "xfs"}).fs_type is FsType.XFS
    with pytest.raises(InvalidArgument, match="different filesystems"):
        parse_volume_params({"fsType": "xfs", "csi.storage.k8s.io/fstype": "ext4"})


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"volumetype": "LVM"}, "volumetype"),
        ({"size": "1Gi"}, "size"),
        ({"vgname": "vg0"}, "vgname"),
    ],
)
def test_unknown_parameters_are_refused_by_name(params: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidArgument, match=f"unknown parameters.*{named}"):
        parse_volume_params(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"volumeType": "NFS"}, "volumeType='NFS'.*LVM, Device, MountPoint"),
        ({"lvmType": "mirror"}, "lvmType='mirror'.*linear, striping, raid1, thin"),
        ({"lvmType": "striping", "stripes": "1"}, "stripes='1'.*2 to 128"),
        ({"lvmType": "striping", "stripes": "two"}, "stripes='two'"),
        ({"lvmType": "striping", "stripes": "-3"}, "stripes='-3'"),
        ({"lvmType": "striping", "stripeSize": "3Ki"}, "stripeSize='3Ki'.*power of two"),
        ({"lvmType": "striping", "stripeSize": "2Ki"}, "stripeSize='2Ki'"),
        ({"lvmType": "thin", "overProvisioningRatio": "0.5"}, "overProvisioningRatio='0.5'"),
        ({"lvmType": "thin", "overProvisioningRatio": "lots"}, "overProvisioningRatio='lots'"),
        ({"lvmType": "thin", "thinPool": "p_tdata"}, "thin pool name"),
        ({"vgName": "vg;reboot"}, "volume group name"),
        ({"vgName": "-vg"}, "volume group name"),
        ({"bps": "-1"}, "bps.*negative"),
        ({"readBps": "lots"}, "readBps.*not a quantity"),
        ({"writeIops": str(2**64)}, "writeIops.*out of range"),
        ({"iops": "fast"}, "iops.*not a quantity"),
        ({"csi.storage.k8s.io/fstype": "btrfs"}, "fstype='btrfs'.*ext4, xfs"),
        ({"volumeType": "Device", "mediaType": "tape"}, "mediaType='tape'.*ssd, hdd"),
    ],
)
def test_invalid_values_name_the_key_and_accepted_values(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_volume_params(params)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"stripes": "2"}, "lvmType striping"),
        ({"lvmType": "linear", "stripeSize": "64Ki"}, "lvmType striping"),
        ({"thinPool": "p"}, "lvmType thin"),
        ({"lvmType": "raid1", "overProvisioningRatio": "2"}, "lvmType thin"),
        ({"mediaType": "ssd"}, "volumeType Device"),
        ({"volumeType": "Device", "vgName": "vg0"}, "volumeType LVM"),
        ({"volumeType": "MountPoint", "lvmType": "thin"}, "volumeType LVM"),
    ],
)
def test_parameters_out_of_their_context_are_refused(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_volume_params(params)


def test_empty_vg_name_means_choose_one() -> None:
    assert parse_volume_params({"vgName": ""}).vg_name is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("25%", SnapshotSize(percent=25)),
        ("100%", SnapshotSize(percent=100)),
        ("2Gi", SnapshotSize(size_bytes=2**31)),
    ],
)
def test_snapshot_sizes(text: str, size: SnapshotSize) -> None:
    assert parse_snapshot_size(text) == size


@pytest.mark.parametrize("text", ["0%", "101%", "2.5%", "%", "-5%", "0", "big"])
def test_invalid_snapshot_sizes(text: str) -> None:
    with pytest.raises(InvalidArgument, match="snapshotSize"):
        parse_snapshot_size(text)


def test_snapshot_parameters() -> None:
    assert parse_snapshot_params({}).snapshot_size == DEFAULT_SNAPSHOT_SIZE == SnapshotSize(percent=100)
    assert parse_snapshot_params({"snapshotSize": "20%"}).snapshot_size.percent == 20
    ignored = {
        "csi.storage.k8s.io/volumesnapshot/name": "s",
        "csi.storage.k8s.io/volumesnapshotcontent/name": "c",
    }
    assert parse_snapshot_params(ignored).snapshot_size == DEFAULT_SNAPSHOT_SIZE
    with pytest.raises(InvalidArgument, match=r"unknown parameters.*retention"):
        parse_snapshot_params({"retention": "1d"})
