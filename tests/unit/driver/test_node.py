"""The node service's publish decisions, over in-memory adapters: what it refuses, activates and locks
(what it mounts and formats at the target: test_publish_targets.py)."""

from __future__ import annotations

import pytest
from node_fakes import (
    GOOD_ID,
    LV,
    TARGET,
    VG,
    Node,
    code_of,
    mount_cap,
    volume_lv,
)

from localcsi.core.capabilities import AccessType, Capability
from localcsi.driver.node import PublishRequest
from localcsi.fs.types import DeviceNumber, Signature

pytestmark = pytest.mark.unit

# -- publish: validation before anything is touched ----------------------------------------------


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (PublishRequest("", TARGET, mount_cap()), "INVALID_ARGUMENT"),
        (PublishRequest("not-an-id", "", mount_cap()), "INVALID_ARGUMENT"),
        (PublishRequest("not-an-id", TARGET, None), "INVALID_ARGUMENT"),
        (PublishRequest("not-an-id", "relative/target", mount_cap()), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, "/var/lib/../../etc", mount_cap()), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, "/mnt/x\x00y", mount_cap()), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, TARGET, Capability("SINGLE_NODE_WRITER", None)), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, TARGET, Capability("UNKNOWN", AccessType.MOUNT)), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, TARGET, mount_cap(flags=("bind",))), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, TARGET, mount_cap(flags=("noatime;reboot",))), "INVALID_ARGUMENT"),
        (PublishRequest(GOOD_ID, TARGET, mount_cap(mode="MULTI_NODE_MULTI_WRITER")), "FAILED_PRECONDITION"),
        (PublishRequest(GOOD_ID, TARGET, mount_cap("btrfs")), "FAILED_PRECONDITION"),
        (
            PublishRequest(GOOD_ID, TARGET, Capability("SINGLE_NODE_WRITER", AccessType.BLOCK, "ext4")),
            "FAILED_PRECONDITION",
        ),
        (PublishRequest("node-1/vg;rm -rf /;/lv", TARGET, mount_cap()), "NOT_FOUND"),
        (PublishRequest("node-1/localcsi-vg/snap-aaaa", TARGET, mount_cap()), "NOT_FOUND"),
        (PublishRequest("node-2/localcsi-vg/csi-aaaa", TARGET, mount_cap()), "NOT_FOUND"),
        (PublishRequest("node-1/other-vg/csi-aaaa", TARGET, mount_cap()), "NOT_FOUND"),
        (PublishRequest("node-1/localcsi-vg/csi-bbbb", TARGET, mount_cap()), "NOT_FOUND"),
    ],
)
def test_publish_refuses_bad_requests_before_touching_anything(request_: PublishRequest, code: str) -> None:
    node = Node(LV)
    assert code_of(node.service.publish, request_) == code
    assert node.fs.changes == []
    assert node.lvm.activated == []


def test_publish_refuses_an_lv_without_this_drivers_tags() -> None:
    untagged = volume_lv(tagged=False)
    node = Node(untagged)
    assert code_of(node.publish, untagged) == "NOT_FOUND"
    assert node.fs.changes == []


# -- publish: access type, read-only, activation, locks (the target itself: test_publish_targets.py) --


def test_a_volume_created_for_block_is_never_published_as_a_filesystem() -> None:
    lv = volume_lv(access="block")
    node = Node(lv)
    assert code_of(node.publish, lv, TARGET, mount_cap()) == "FAILED_PRECONDITION"
    assert node.fs.changes == []


@pytest.mark.parametrize(
    ("readonly", "capability", "expected_options", "remounted"),
    [
        (True, mount_cap(), ("rw",), True),
        (False, mount_cap(mode="SINGLE_NODE_READER_ONLY"), ("rw",), True),
        (False, mount_cap(flags=("ro", "noexec")), ("ro", "noexec"), False),
    ],
)
def test_read_only_publishes(
    readonly: bool, capability: Capability, expected_options: tuple[str, ...], remounted: bool
) -> None:
    node = Node(LV)
    node.fs.signatures[LV.device_path] = Signature("ext4", "filesystem")
    node.publish(LV, capability=capability, readonly=readonly)
    mount = node.fs.find_mount(TARGET)
    assert mount is not None and mount.read_only
    assert (("remount-ro", TARGET) in node.fs.changes) is remounted
    assert node.fs.changes[1][-1] == tuple(option for option in expected_options if option != "rw")


def test_an_inactive_volume_is_activated_before_use() -> None:
    sleeping = volume_lv(active=False)
    node = Node(sleeping)
    node.fs.devices[sleeping.device_path] = DeviceNumber(253, 99)
    node.publish(sleeping)
    assert node.lvm.activated == [f"{VG}/{sleeping.name}"]
    assert node.fs.find_mount(TARGET) is not None


def test_an_lv_that_does_not_activate_is_internal() -> None:
    sleeping = volume_lv(active=False)
    node = Node(sleeping, activation_works=False)
    assert code_of(node.publish, sleeping) == "INTERNAL"
    assert node.fs.changes == []


def test_a_second_operation_on_the_same_volume_is_aborted() -> None:
    node = Node(LV)
    with node.service.locks.hold(GOOD_ID):
        assert code_of(node.publish, LV) == "ABORTED"
        assert code_of(node.service.unpublish, GOOD_ID, TARGET) == "ABORTED"
    assert node.fs.changes == []
