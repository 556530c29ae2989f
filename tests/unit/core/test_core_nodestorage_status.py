"""The NodeLocalStorage status: layout, filters, summary, conditions and change detection."""

from __future__ import annotations

from typing import Any

import pytest

from localcsi.core.model import LogicalVolume, PhysicalVolume, VolumeGroup
from localcsi.core.nodestorage import (
    DEFAULT_DEVICE_PATTERNS,
    BlockDevice,
    MountedFilesystem,
    NodeInventory,
    parse_spec,
)
from localcsi.core.nodestorage_init import Refusal, VgInitPlan
from localcsi.core.nodestorage_status import (
    ConditionUpdate,
    build_status,
    discovered_condition,
    discovery_failed,
    failed_status,
    init_condition,
    merge_conditions,
    status_changed,
)
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import OWNER_TAG

pytestmark = pytest.mark.unit

EXTENT = 4 * MiB
T0, T1 = "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"


def device(name: str, *, kind: str = "disk", parent: str = "", rotational: bool = True, **kw: Any) -> BlockDevice:
    return BlockDevice(name, f"/dev/{name}", 10 * GiB, kind, rotational, False, parent=parent, **kw)


def lv(name: str, vg: str = "pool0", attr: str = "-wi-a-----", **kw: Any) -> LogicalVolume:
    return LogicalVolume(vg, name, GiB, attr, **kw)


PV_B = PhysicalVolume("/dev/vdb", "pool0", 10 * GiB, 6 * GiB)
PV_B = PhysicalVolume("/dev/vdb", "pool0", 10 * GiB, 6 * GiB)
PV_C = PhysicalVolume("/dev/vdc", "other", 10 * GiB, 0)
INVENTORY = NodeInventory(
    devices=(
        device("vda", partitions=("vda1",)),
        device("vda1", kind="part", parent="vda", mountpoint="/"),
        device("vdb", rotational=False),
        device("vdc"),
        device("vdd", fstype="ext4"),
        device("loop0"),
    ),
    vgs=(
        VolumeGroup("pool0", 10 * GiB, 6 * GiB, EXTENT, 1, pvs=(PV_B,), tags=(OWNER_TAG,)),
        VolumeGroup("other", 10 * GiB, 0, EXTENT, 1, pvs=(PV_C,)),
    ),
    lvs=(
        lv("csi-a"),
        lv("thin-pool", attr="twi-aotz--", data_percent=97.0, metadata_percent=10.0),
        lv("broken", attr="-wi-a---p-"),
        lv("theirs", vg="other"),
    ),
    mounts=(
        MountedFilesystem("/", "/dev/vda1", "ext4", ("rw", "relatime"), 5 * GiB, GiB, False),
        MountedFilesystem("/run", "/dev/loop0", "ext4", ("ro",), GiB, 0, False),
    ),
)
SPEC = parse_spec(
    {
        "listConfig": {
            "vgs": {"include": ["^pool[0-9]+$"]},
            "devices": {"include": ["/dev/vd[b-z]"]},
            "mountPoints": {"include": ["/"]},
        },
        "reservedSpace": [{"vgName": "pool0", "size": "1Gi"}],
    }
)


def status(previous: dict[str, Any] | None = None, now: str = T0, generation: int = 1, **kw: Any) -> dict[str, Any]:
    conditions = [discovered_condition(SPEC, INVENTORY), init_condition(SPEC, VgInitPlan(), {})]
    return build_status(SPEC, kw.get("inventory", INVENTORY), conditions, previous=previous, now=now,
                        generation=generation, patterns=DEFAULT_DEVICE_PATTERNS)  # fmt: skip


def test_layout_has_every_key_the_crd_has() -> None:
    result = status()
    assert set(result) == {"nodeStorageInfo", "filteredStorageInfo", "summary", "conditions"}
    assert set(result["nodeStorageInfo"]) == {"deviceInfo", "volumeGroups", "mountPoints"}
    assert set(result["filteredStorageInfo"]) == {"volumeGroups", "devices", "mountPoints", "updateStatusInfo"}
    assert result["filteredStorageInfo"]["updateStatusInfo"] == {"updateStatus": "accepted", "lastUpdateTime": T0}


def test_device_info_lists_in_scope_disks_and_partitions_with_media_type() -> None:
    devices = {d["name"]: d for d in status()["nodeStorageInfo"]["deviceInfo"]}
    assert sorted(devices) == ["/dev/vda", "/dev/vda1", "/dev/vdb", "/dev/vdc", "/dev/vdd"]  # no loop0
    assert devices["/dev/vdb"] == {"name": "/dev/vdb", "mediaType": "ssd", "readOnly": False, "total": 10 * GiB,
                                   "condition": "DiskReady"}  # fmt: skip
    assert devices["/dev/vdc"]["mediaType"] == "hdd"


def test_volume_groups_carry_capacity_lvs_and_placement_details() -> None:
    groups = {g["name"]: g for g in status()["nodeStorageInfo"]["volumeGroups"]}
    pool = groups["pool0"]
    assert (pool["total"], pool["available"], pool["reserved"], pool["allocatable"]) == (
        10 * GiB, 6 * GiB, GiB, 5 * GiB,
    )  # fmt: skip
    assert pool["physicalVolumes"] == ["/dev/vdb"] and pool["condition"] == "DiskReady"
    conditions = {v["name"]: v["condition"] for v in pool["logicalVolumes"]}
    assert conditions == {"broken": "DiskFault", "csi-a": "DiskReady", "thin-pool": "DiskFull"}
    assert pool["logicalVolumes"][0] == {"name": "broken", "vgname": "pool0", "total": GiB, "condition": "DiskFault"}
    assert pool["extentSize"] == EXTENT
    assert pool["physicalVolumeInfo"] == [{"name": "/dev/vdb", "total": 10 * GiB, "available": 6 * GiB}]
    assert pool["thinPools"] == [
        {"name": "thin-pool", "total": GiB, "dataPercent": 97.0, "metadataPercent": 10.0, "virtual": 0}
    ]
    assert groups["other"]["condition"] == "DiskFull" and groups["other"]["allocatable"] == 0


def test_filtered_lists_and_summary() -> None:
    result = status()
    filtered = result["filteredStorageInfo"]
    assert filtered["volumeGroups"] == ["pool0"]
    # vdb and vdc are PVs, vdd has a filesystem: none of them is free to hand out whole
    assert filtered["devices"] == []
    assert filtered["mountPoints"] == ["/"]
    assert result["summary"] == {"readyVolumeGroups": 1, "total": 10 * GiB, "allocatable": 5 * GiB}
    free = NodeInventory(devices=(*INVENTORY.devices, device("vde")), vgs=INVENTORY.vgs, lvs=INVENTORY.lvs)
    assert status(inventory=free)["filteredStorageInfo"]["devices"] == ["/dev/vde"]


def test_mount_points_are_those_of_scoped_devices() -> None:
    [mount] = status()["nodeStorageInfo"]["mountPoints"]
    assert mount == {"name": "/", "total": 5 * GiB, "available": GiB, "fsType": "ext4", "isBind": False,
                     "options": ["rw", "relatime"], "device": "/dev/vda1", "readOnly": False,
                     "condition": "DiskReady"}  # fmt: skip


def test_conditions_ready_follows_the_others() -> None:
    conditions = {c["type"]: c for c in status()["conditions"]}
    assert set(conditions) == {"Discovered", "VolumeGroupsInitialized", "Ready"}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "StorageDiscovered"
    assert conditions["VolumeGroupsInitialized"]["reason"] == "NothingToInitialize"
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] == T0 for c in conditions.values())


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    first = merge_conditions([], [ConditionUpdate("Discovered", True, "Discovered", "a")], T0, 1)
    same = merge_conditions(first, [ConditionUpdate("Discovered", True, "Discovered", "b")], T1, 2)
    assert same[0]["lastTransitionTime"] == T0 and same[0]["message"] == "b" and same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [ConditionUpdate("Discovered", False, "DiscoveryFailed", "x")], T1, 2)
    assert flipped[0]["lastTransitionTime"] == T1 and flipped[0]["status"] == "False"


def test_others_conditions_are_kept_and_bad_reasons_refused() -> None:
    foreign = {"type": "Extra", "status": "True", "reason": "X", "message": "", "lastTransitionTime": T0}
    merged = merge_conditions([foreign], [ConditionUpdate("Ready", True, "Ok", "")], T1, 1)
    assert [c["type"] for c in merged] == ["Extra", "Ready"]
    with pytest.raises(ValueError, match="reason"):
        merge_conditions([], [ConditionUpdate("Ready", True, "not valid", "")], T0, 1)


def test_init_condition_reasons() -> None:
    spec = parse_spec({"resourceToBeInited": {"vgs": [{"name": "p0", "devices": ["/dev/vdb"]}]}})
    refused = VgInitPlan(refusals=(Refusal("p0", "/dev/vdb", "blkid finds ext4 (filesystem) on it"),))
    condition = init_condition(spec, refused, {})
    assert (condition.status, condition.reason) == (False, "DevicesRefused")
    assert "VG p0, device /dev/vdb: blkid finds ext4" in condition.message
    failed = init_condition(spec, VgInitPlan(), {"p0": "vgcreate failed"})
    assert (failed.status, failed.reason) == (False, "CreateFailed") and "vgcreate failed" in failed.message
    done = init_condition(spec, VgInitPlan(existing=("p0",)), {})
    assert (done.status, done.reason) == (True, "Initialized")


def test_spec_problems_show_in_discovered() -> None:
    spec = parse_spec({"listConfig": {"vgs": {"include": ["("]}}})
    condition = discovered_condition(spec, INVENTORY)
    assert condition.status and condition.reason == "SpecEntriesIgnored" and "(" in condition.message


def test_a_refusal_makes_ready_false_with_its_reason() -> None:
    spec = parse_spec({"resourceToBeInited": {"vgs": [{"name": "p0", "devices": ["/dev/vdb"]}]}})
    refused = init_condition(spec, VgInitPlan(refusals=(Refusal("p0", "/dev/vdb", "mounted at /x"),)), {})
    result = build_status(spec, INVENTORY, [discovered_condition(spec, INVENTORY), refused], previous=None, now=T0,
                          generation=3, patterns=DEFAULT_DEVICE_PATTERNS)  # fmt: skip
    ready = next(c for c in result["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DevicesRefused") and "mounted at /x" in ready["message"]


def test_only_update_time_does_not_count_as_a_change() -> None:
    first = status()
    later = status(previous=first, now=T1)
    assert later["filteredStorageInfo"]["updateStatusInfo"]["lastUpdateTime"] == T1
    assert not status_changed(first, later)
    assert status_changed(None, first)
    grown = NodeInventory(devices=INVENTORY.devices, vgs=INVENTORY.vgs, lvs=(*INVENTORY.lvs, lv("csi-b")))
    assert status_changed(first, status(previous=first, now=T1, inventory=grown))


def test_fields_others_wrote_are_not_compared() -> None:
    first = status()
    assert not status_changed({**first, "somethingElse": {"x": 1}}, status(previous=first, now=T1))


def test_failed_discovery_writes_conditions_only() -> None:
    result = failed_status(status(), discovery_failed("`lsblk` failed"), T1, 1)
    assert list(result) == ["conditions"]
    by_type = {c["type"]: c for c in result["conditions"]}
    assert by_type["Discovered"]["status"] == "False" and by_type["Ready"]["reason"] == "DiscoveryFailed"
    assert by_type["VolumeGroupsInitialized"]["status"] == "True"  # kept from before


def test_a_device_volumes_vg_is_listed_but_never_offered() -> None:
    """A Device volume's disk is a PV of its own VG: reported (used, with its LV), not free, not offered."""
    taken = "localcsi-dev-0123456789abcdef0123"
    spec = parse_spec({"listConfig": {"vgs": {"include": ["^localcsi-.+$", "^pool[0-9]+$"]},
                                      "devices": {"include": ["/dev/vd[b-z]"]}}})  # fmt: skip
    pv = PhysicalVolume("/dev/vde", taken, 10 * GiB, 0)
    inventory = NodeInventory(
        devices=(*INVENTORY.devices, device("vde", fstype="LVM2_member"), device("vdf")),
        vgs=(*INVENTORY.vgs, VolumeGroup(taken, 10 * GiB, 0, EXTENT, 1, pvs=(pv,), tags=(OWNER_TAG,))),
        lvs=(*INVENTORY.lvs, lv("csi-d", vg=taken)),
    )
    conditions = [discovered_condition(spec, inventory), init_condition(spec, VgInitPlan(), {})]
    result = build_status(spec, inventory, conditions, previous=None, now=T0, generation=1,
                          patterns=DEFAULT_DEVICE_PATTERNS)  # fmt: skip
    groups = {vg["name"]: vg for vg in result["nodeStorageInfo"]["volumeGroups"]}
    assert [entry["name"] for entry in groups[taken]["logicalVolumes"]] == ["csi-d"]
    assert result["filteredStorageInfo"]["volumeGroups"] == ["pool0"]
    assert result["filteredStorageInfo"]["devices"] == ["/dev/vdf"]
    assert "/dev/vde" in [d["name"] for d in result["nodeStorageInfo"]["deviceInfo"]]
