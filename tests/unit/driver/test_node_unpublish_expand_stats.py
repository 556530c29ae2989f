"""The node service's unpublish, expand, stats and info decisions, over in-memory adapters."""

from __future__ import annotations

from dataclasses import replace

import pytest
from node_fakes import (
    BLOCK_TARGET,
    DIRECTORY,
    GIB,
    GOOD_ID,
    LV,
    NODE,
    TARGET,
    USAGE,
    VG,
    Node,
    block_cap,
    code_of,
    mount_cap,
    volume_id,
    volume_lv,
)

from localcsi import TOPOLOGY_KEY
from localcsi.core.capabilities import Capability
from localcsi.core.model import LogicalVolume
from localcsi.driver.node import ExpandRequest
from localcsi.fs.types import DeviceNumber, Mount

pytestmark = pytest.mark.unit

# -- unpublish ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "target", "code"),
    [
        ("", TARGET, "INVALID_ARGUMENT"),
        ("x", "", "INVALID_ARGUMENT"),
        (GOOD_ID, "rel", "INVALID_ARGUMENT"),
        ("garbage", TARGET, "NOT_FOUND"),
        ("node-9/localcsi-vg/csi-aaaa", TARGET, "NOT_FOUND"),
    ],
)
def test_unpublish_refuses_bad_requests(volume: str, target: str, code: str) -> None:
    node = Node(LV)
    assert code_of(node.service.unpublish, volume, target) == code
    assert node.fs.changes == []


@pytest.mark.parametrize(("target", "capability"), [(TARGET, mount_cap()), (BLOCK_TARGET, block_cap())])
def test_unpublish_unmounts_and_removes_the_target_then_is_a_no_op(target: str, capability: Capability) -> None:
    node = Node(LV)
    node.publish(LV, target, capability)
    node.service.unpublish(GOOD_ID, target)
    assert node.fs.find_mount(target) is None
    assert node.fs.path_info(target) is None
    done = len(node.fs.changes)
    node.service.unpublish(GOOD_ID, target)
    assert len(node.fs.changes) == done


def test_unpublish_removes_every_stacked_mount_of_the_volume() -> None:
    node = Node(LV)
    node.publish(LV)
    node.fs.mount(LV.device_path, TARGET, "ext4")
    node.service.unpublish(GOOD_ID, TARGET)
    assert node.fs.changes[-3:] == [("umount", TARGET), ("umount", TARGET), ("rmdir", TARGET)]


def test_unpublish_leaves_another_devices_mount_alone() -> None:
    other = volume_lv("csi-bbbb", minor=2)
    node = Node(LV, other)
    node.publish(other)
    assert code_of(node.service.unpublish, GOOD_ID, TARGET) == "FAILED_PRECONDITION"
    assert node.fs.find_mount(TARGET) is not None


# -- expand ------------------------------------------------------------------------------------------


def test_expand_grows_the_mounted_filesystem_and_reports_the_device_size() -> None:
    node = Node(LV)
    node.publish(LV, capability=mount_cap("xfs"))
    node.fs.sizes[LV.device_path] = 2 * GIB
    assert node.service.expand(ExpandRequest(GOOD_ID, TARGET, 2 * GIB)) == 2 * GIB
    assert node.fs.changes[-1] == ("resize", "xfs", LV.device_path, TARGET)


def test_expand_of_a_block_volume_only_reports_its_size() -> None:
    node = Node(LV)
    node.publish(LV, BLOCK_TARGET, block_cap())
    changes = len(node.fs.changes)
    assert node.service.expand(ExpandRequest(GOOD_ID, BLOCK_TARGET, 0)) == GIB
    assert len(node.fs.changes) == changes


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (ExpandRequest("", TARGET), "INVALID_ARGUMENT"),
        (ExpandRequest(GOOD_ID, ""), "INVALID_ARGUMENT"),
        (ExpandRequest("random-id", "some/path"), "NOT_FOUND"),
        (ExpandRequest(GOOD_ID, "some/path"), "NOT_FOUND"),
        (ExpandRequest(GOOD_ID, TARGET, -1), "INVALID_ARGUMENT"),
        (ExpandRequest(GOOD_ID, "/elsewhere"), "NOT_FOUND"),
        (ExpandRequest("node-1/localcsi-vg/csi-cccc", TARGET), "NOT_FOUND"),
        (ExpandRequest(GOOD_ID, TARGET, 2 * GIB), "OUT_OF_RANGE"),
    ],
)
def test_expand_errors_resize_nothing(request_: ExpandRequest, code: str) -> None:
    node = Node(LV)
    node.publish(LV)
    assert code_of(node.service.expand, request_) == code
    assert not [change for change in node.fs.changes if change[0] == "resize"]


def test_expand_refuses_a_filesystem_it_cannot_grow() -> None:
    node = Node(LV)
    node.fs.mounts[TARGET] = [Mount(TARGET, LV.device_path, "btrfs", ("rw",), DeviceNumber(253, 1))]
    node.fs.paths[TARGET] = DIRECTORY
    assert code_of(node.service.expand, ExpandRequest(GOOD_ID, TARGET)) == "FAILED_PRECONDITION"


# -- stats and info ------------------------------------------------------------------------------------


def test_stats_of_a_filesystem_volume() -> None:
    node = Node(LV)
    node.publish(LV)
    stats = node.service.stats(GOOD_ID, TARGET)
    assert (stats.total_bytes, stats.usage) == (USAGE.total_bytes, USAGE)
    assert not stats.condition.abnormal


def test_stats_of_a_block_volume_in_a_full_thin_pool() -> None:
    thin = volume_lv(pool="pool0")
    pool = LogicalVolume(VG, "pool0", GIB, "twi-aotzD-", data_percent=100.0, metadata_percent=10.0)
    node = Node(thin, pool)
    node.publish(thin, BLOCK_TARGET, block_cap())
    stats = node.service.stats(volume_id(thin), BLOCK_TARGET)
    assert (stats.total_bytes, stats.usage) == (GIB, None)
    assert stats.condition.abnormal
    assert "out of data space" in stats.condition.message


@pytest.mark.parametrize(
    ("volume", "path", "code"),
    [
        ("", TARGET, "INVALID_ARGUMENT"),
        (GOOD_ID, "", "INVALID_ARGUMENT"),
        ("random-id", "some/path", "NOT_FOUND"),
        (GOOD_ID, "some/path", "NOT_FOUND"),
        (GOOD_ID, "/not/published", "NOT_FOUND"),
        ("node-1/localcsi-vg/csi-cccc", TARGET, "NOT_FOUND"),
    ],
)
def test_stats_errors(volume: str, path: str, code: str) -> None:
    node = Node(LV)
    node.publish(LV)
    assert code_of(node.service.stats, volume, path) == code


def test_stats_of_another_volumes_mount_is_not_found() -> None:
    other = volume_lv("csi-bbbb", minor=2)
    node = Node(LV, other)
    node.publish(other)
    assert code_of(node.service.stats, GOOD_ID, TARGET) == "NOT_FOUND"


def test_info_reports_the_node_and_its_topology() -> None:
    info = Node().service.info()
    assert (info.node_id, info.max_volumes_per_node, info.topology) == (NODE, 50, {TOPOLOGY_KEY: NODE})


def test_an_lv_deactivated_after_publish_is_not_published_anywhere() -> None:
    node = Node(LV)
    node.publish(LV)
    node.lvm.lvs[(VG, LV.name)] = replace(LV, attr="-wi-------", kernel_major=None, kernel_minor=None)
    assert code_of(node.service.stats, GOOD_ID, TARGET) == "NOT_FOUND"
