"""The e2e release's values: what the init config and the node pods get from an environment's disks."""

from __future__ import annotations

import pytest

from localcsi.testing.e2e_env import MOUNT_POINT, MOUNT_POINT_DIR, POOL_VG, helm_values

pytestmark = pytest.mark.unit


def test_the_init_config_offers_exactly_the_device_disks_and_makes_the_mount_point() -> None:
    values = helm_values("/dev/vdb", ["/dev/vdc", "/dev/sda"], "/dev/vde")
    (entry,) = values["initConfig"]["nodesConfig"]
    assert entry["resourceToBeInited"] == {
        "vgs": [{"name": POOL_VG, "devices": ["/dev/vdb"]}],
        "mountpoints": [{"path": MOUNT_POINT, "device": "/dev/vde", "fsType": "ext4"}],
    }
    assert entry["listConfig"]["devices"] == {"include": ["^/dev/vdc$", "^/dev/sda$"]}
    assert entry["listConfig"]["mountPoints"] == {"include": [f"^{MOUNT_POINT_DIR}/.+$"]}
    assert MOUNT_POINT.startswith(MOUNT_POINT_DIR + "/")
    assert values["node"]["mountPointDirs"] == [MOUNT_POINT_DIR]


def test_without_exclusive_disks_only_the_pool_is_configured() -> None:
    values = helm_values("/dev/loop0")
    (entry,) = values["initConfig"]["nodesConfig"]
    assert entry == {"selector": {}, "resourceToBeInited": {"vgs": [{"name": POOL_VG, "devices": ["/dev/loop0"]}]}}
    assert values["node"]["mountPointDirs"] == []


def test_one_node_gets_one_replica_of_the_leader_elected_controllers_and_capacity_within_seconds() -> None:
    values = helm_values("/dev/vdb")
    assert [values[key]["replicas"] for key in ("csiController", "controller", "snapshotController")] == [1, 1, 1]
    assert values["csiController"]["capacityPollInterval"] == "10s"
    assert values["node"]["agent"] == {"resyncSeconds": 20}
