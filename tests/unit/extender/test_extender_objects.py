import hashlib

import pytest
from extender_objects import inline, nls, pod, pv_for, pvc, storage_class

from localcsi.core.errors import InvalidArgument
from localcsi.core.exclusive import MOUNTPOINT_GROUP, device_vg_name, usable_bytes
from localcsi.core.ids import make_ref
from localcsi.core.names import volume_lv_name
from localcsi.core.params import LvmType, MediaType, VolumeParams, VolumeType
from localcsi.core.scheduling import Usage, lvm_charge
from localcsi.core.sizes import GiB, MiB
from localcsi.extender.objects import (
    byte_count,
    class_params,
    inline_usages,
    inline_volume_key,
    is_ours,
    pending_usage,
    pv_node,
    pvc_volume_key,
    report_from_nls,
    usage_from_logical_volume,
    usage_from_pv,
)

pytestmark = pytest.mark.unit


def test_report_keeps_only_filtered_storage_and_our_lvs() -> None:
    obj = nls("n1", ("vg0", 10), ("vg1", 20), lvs=("csi-abc", "snap-def", "home", "localcsi-thinpool"))
    obj["status"]["filteredStorageInfo"]["volumeGroups"] = ["vg0"]
    report = report_from_nls(obj)
    assert report.node == "n1"
    assert [(vg.name, vg.free_bytes, vg.size_bytes, vg.problem) for vg in report.vgs] == [
        ("vg0", 10 * GiB, 100 * GiB, None)
    ]
    assert report.lv_keys == {"csi-abc", "snap-def"}


def test_report_size_excludes_the_reserve_and_faulty_vgs_carry_a_problem() -> None:
    obj = nls("n1", ("vg0", 10))
    group = obj["status"]["nodeStorageInfo"]["volumeGroups"][0]
    group.update(reserved=30 * GiB, condition="DiskFault")
    (vg,) = report_from_nls(obj).vgs
    assert (vg.size_bytes, vg.problem) == (70 * GiB, "condition DiskFault")


def test_report_lists_usable_devices_and_mount_points() -> None:
    devices = (
        {"name": "/dev/sdb", "total": 100 * GiB, "mediaType": "ssd", "condition": "DiskReady"},
        {"name": "/dev/sdc", "total": 100 * GiB, "mediaType": "hdd", "readOnly": True},
        {"name": "/dev/sdd", "total": 100 * GiB},
    )
    obj = nls("n1", devices=devices)
    obj["status"]["filteredStorageInfo"]["devices"] = ["/dev/sdb", "/dev/sdc"]
    obj["status"]["nodeStorageInfo"]["mountPoints"] = [{"name": "/mnt/a", "total": GiB}]
    obj["status"]["filteredStorageInfo"]["mountPoints"] = ["/mnt/a"]
    disks = report_from_nls(obj).disks
    assert [(d.name, d.kind, d.media_type, d.problem) for d in disks] == [
        ("/dev/sdb", VolumeType.DEVICE, MediaType.SSD, None),
        ("/dev/sdc", VolumeType.DEVICE, MediaType.HDD, "read-only"),
        ("/mnt/a", VolumeType.MOUNTPOINT, None, None),
    ]


def test_a_report_without_status_offers_nothing() -> None:
    report = report_from_nls({"metadata": {"name": "n1"}, "spec": {"nodeName": "n1"}})
    assert (report.node, report.vgs, report.disks) == ("n1", (), ())


def test_byte_counts_accept_ints_and_quantities_only() -> None:
    assert byte_count(5) == 5
    assert byte_count("1Gi") == GiB
    assert byte_count("lots", 7) == 7
    assert byte_count(True, 7) == 7
    assert byte_count(None) == 0


def test_storage_class_ownership_and_parameters() -> None:
    assert is_ours(storage_class())
    assert not is_ours(storage_class(provisioner="topolvm.io"))
    params = class_params(storage_class(vgName="vg1", lvmType="raid1"))
    assert (params.vg_name, params.lvm_type) == ("vg1", LvmType.RAID1)
    with pytest.raises(InvalidArgument, match="volumeType"):
        class_params(storage_class(volumeType="Floppy"))


def test_a_pvc_a_pv_and_the_lv_share_one_key() -> None:
    claim = pvc("data", "5Gi")
    volume = pv_for(claim, "n1", "vg0")
    found = usage_from_pv(volume)
    assert found is not None
    node, usage = found
    # the controller names the LV after the CSI name, which is the PV name pvc-<PVC uid>
    expected_lv = make_ref("n1", "vg0", volume_lv_name(f"pvc-{claim['metadata']['uid']}")).lv
    assert (node, usage) == ("n1", Usage(expected_lv, 5 * GiB, "vg0"))
    assert pvc_volume_key(claim) == expected_lv
    assert pending_usage(claim, VolumeParams(), "n1", GiB).key == expected_lv


def test_pv_node_falls_back_to_node_affinity() -> None:
    volume = pv_for(pvc("d"), "n7")
    volume["spec"]["csi"]["volumeHandle"] = "device:/dev/sdb"
    assert pv_node(volume) == "n7"
    assert usage_from_pv(volume) is None  # not an LVM id, no volumeType: nothing known to count
    volume["spec"]["csi"]["volumeAttributes"] = {"volumeType": "Device"}
    assert usage_from_pv(volume) is None  # which disk is unknown: the agent's offer already leaves it out
    volume["spec"]["csi"]["volumeAttributes"]["device"] = "/dev/sdb"
    found = usage_from_pv(volume)
    assert found is not None
    assert (found[0], found[1].volume_type, found[1].disk) == ("n7", VolumeType.DEVICE, "/dev/sdb")


def test_pvs_of_other_drivers_count_nothing() -> None:
    volume = pv_for(pvc("x"), "n1")
    volume["spec"]["csi"]["driver"] = "topolvm.io"
    assert usage_from_pv(volume) is None


def test_raid1_pvs_count_both_legs() -> None:
    volume = pv_for(pvc("r", "1Gi"), "n1")
    volume["spec"]["csi"]["volumeAttributes"] = {"lvmType": "raid1"}
    found = usage_from_pv(volume)
    assert found is not None
    assert found[1].charge_bytes == lvm_charge(GiB, VolumeParams(lvm_type=LvmType.RAID1))


def test_logical_volumes_count_their_planned_size() -> None:
    volume = {
        "metadata": {"name": "csi-0123"},
        "spec": {"nodeName": "n1", "vgName": "vg0", "kind": "Volume", "size": 3 * GiB, "lvmType": "linear"},
    }
    assert usage_from_logical_volume(volume) == ("n1", Usage("csi-0123", 3 * GiB, "vg0"))
    snapshot = {
        "metadata": {"name": "snap-1"},
        "spec": {"nodeName": "n1", "vgName": "vg0", "kind": "Snapshot", "size": 8 * GiB, "cowSize": 512 * MiB},
    }
    assert usage_from_logical_volume(snapshot) == ("n1", Usage("snap-1", 512 * MiB, "vg0"))
    assert usage_from_logical_volume({"metadata": {"name": "x"}, "spec": {}}) is None


def test_a_device_or_mountpoint_logical_volume_takes_one_fitting_disk_not_vg_room() -> None:
    device = {
        "metadata": {"name": "csi-0123"},
        "spec": {"nodeName": "n1", "vgName": "localcsi-dev-0123456789abcdef0123", "kind": "Volume",
                 "size": 3 * GiB, "lvmType": "linear", "volumeType": "Device", "mediaType": "ssd"},
    }  # fmt: skip
    expected = Usage("csi-0123", volume_type=VolumeType.DEVICE, size_bytes=3 * GiB, media_type=MediaType.SSD)
    assert usage_from_logical_volume(device) == ("n1", expected)
    mount = {
        "metadata": {"name": "csi-4567"},
        "spec": {"nodeName": "n1", "vgName": "localcsi-mountpoint", "kind": "Volume", "size": GiB,
                 "volumeType": "MountPoint"},
    }  # fmt: skip
    assert usage_from_logical_volume(mount) == ("n1", Usage("csi-4567", volume_type=VolumeType.MOUNTPOINT,
                                                            size_bytes=GiB))  # fmt: skip


def test_pending_usage_follows_the_class() -> None:
    claim = pvc("d", "10Gi")
    lvm = pending_usage(claim, VolumeParams(vg_name="vg1"), "n1", GiB)
    assert (lvm.vg, lvm.charge_bytes) == ("vg1", 10 * GiB)
    disk = pending_usage(claim, VolumeParams(VolumeType.DEVICE, media_type=MediaType.HDD), "n1", GiB)
    assert (disk.volume_type, disk.size_bytes, disk.media_type, disk.disk) == (
        VolumeType.DEVICE,
        10 * GiB,
        MediaType.HDD,
        None,
    )


def test_a_claim_whose_volume_name_the_driver_would_refuse_still_gets_a_key() -> None:
    """Found by fuzzing: a 200-character uid made pvc_volume_key raise, and filter answer 500."""
    odd = pvc("odd", "1Gi", uid="u" * 200)
    key = pvc_volume_key(odd)
    assert key == pvc_volume_key(odd) and key.startswith("invalid-"), "stable, and never a real LV name"
    assert key != pvc_volume_key(pvc("odd", "1Gi", uid="v" * 200))


def test_inline_volume_keys_follow_kubelets_volume_handle() -> None:
    handle = "csi-" + hashlib.sha256(b"uid-p1scratch").hexdigest()
    assert inline_volume_key("uid-p1", "scratch") == volume_lv_name(handle)


def test_inline_usages_of_a_scheduled_pod() -> None:
    scheduled = pod("p1", node="n1", volumes=(inline("scratch", size="2Gi"), inline("bad", volumeType="Tape")))
    assert inline_usages(scheduled, GiB) == [Usage(inline_volume_key("uid-p1", "scratch"), 2 * GiB, None)]


def test_a_device_disk_offers_its_usable_size_and_a_device_volumes_lv_is_a_reported_volume() -> None:
    """The driver gives a Device volume the disk less lvm2's first MiB, in 4 MiB extents: so does the
    extender. The LV in a Device volume's VG (not an offered VG) counts as reported."""
    obj = nls("n1", ("vg0", 10), devices=({"name": "/dev/sdb", "total": GiB, "mediaType": "ssd"},))
    device_vg = device_vg_name("pvc-d")
    obj["status"]["nodeStorageInfo"]["volumeGroups"].append(
        {"name": device_vg, "total": GiB, "logicalVolumes": [{"name": volume_lv_name("pvc-d"), "total": GiB}]}
    )
    report = report_from_nls(obj)
    assert [(d.name, d.size_bytes) for d in report.disks] == [("/dev/sdb", usable_bytes(GiB))]
    assert [vg.name for vg in report.vgs] == ["vg0"], "a Device volume's VG is never room for LVM volumes"
    assert volume_lv_name("pvc-d") in report.lv_keys


def test_a_pv_of_an_exclusive_volume_is_an_exclusive_usage() -> None:
    claim = pvc("data", "1Gi", "device")
    device = pv_for(claim, "n1", vg=device_vg_name("pvc-d"))
    node, usage = usage_from_pv(device) or ("", Usage(""))
    assert node == "n1" and usage.volume_type is VolumeType.DEVICE and usage.disk is None
    assert usage.size_bytes == GiB and usage.charge_bytes == 0 and usage.vg is None
    mount_point = pv_for(claim, "n1", vg=MOUNTPOINT_GROUP)
    node, usage = usage_from_pv(mount_point) or ("", Usage(""))
    assert usage.volume_type is VolumeType.MOUNTPOINT and usage.size_bytes == GiB
