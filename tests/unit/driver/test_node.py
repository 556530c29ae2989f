"""The node service's publish decisions, over in-memory adapters: what it mounts, formats and refuses."""

from __future__ import annotations

import pytest
from node_fakes import (
    BLOCK_TARGET,
    DIRECTORY,
    EMPTY_FILE,
    GOOD_ID,
    LV,
    TARGET,
    VG,
    Node,
    block_cap,
    code_of,
    mount_cap,
    volume_lv,
)

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import CoreError
from localcsi.core.sizes import MiB as MIB
from localcsi.core.tags import Source, SourceKind
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


# -- publish: filesystems -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability_fs", "tag_fs", "made"),
    [("xfs", None, "xfs"), ("", "xfs", "xfs"), ("", None, "ext4"), ("ext4", "xfs", "ext4")],
)
def test_a_blank_device_gets_the_asked_filesystem(capability_fs: str, tag_fs: str | None, made: str) -> None:
    lv = volume_lv(fs_type=tag_fs)
    node = Node(lv)
    node.publish(lv, capability=mount_cap(capability_fs, ("noatime",)))
    assert node.fs.changes == [
        ("mkfs", made, lv.device_path),
        ("mkdir", TARGET),
        ("mount", lv.device_path, TARGET, made, ("noatime",)),
    ]


@pytest.mark.parametrize(("capability_fs", "tag_fs"), [("xfs", None), ("xfs", "ext4"), ("", "xfs")])
def test_a_blank_device_too_small_for_xfs_is_refused_before_mkfs(capability_fs: str, tag_fs: str | None) -> None:
    lv = volume_lv(fs_type=tag_fs, size=300 * MIB - 4 * MIB)
    node = Node(lv)
    with pytest.raises(CoreError) as raised:
        node.publish(lv, capability=mount_cap(capability_fs))
    assert raised.value.code == "FAILED_PRECONDITION"
    assert "less than the 300 MiB an xfs filesystem needs" in raised.value.message
    assert node.fs.changes == []
    big = volume_lv("csi-bbbb", fs_type=tag_fs, size=300 * MIB, minor=2)
    node = Node(big)
    node.publish(big, capability=mount_cap(capability_fs))
    assert node.fs.changes[0] == ("mkfs", "xfs", big.device_path)


@pytest.mark.parametrize("requested", ["", "xfs"])
def test_an_existing_filesystem_is_mounted_as_it_is(requested: str) -> None:
    node = Node(LV)
    node.fs.signatures[LV.device_path] = Signature("xfs", "filesystem")
    node.fs.paths[TARGET] = DIRECTORY
    node.publish(LV, capability=mount_cap(requested))
    assert node.fs.changes == [("mount", LV.device_path, TARGET, "xfs", ())]


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_a_restored_filesystem_is_grown_to_its_device_when_published(fs_type: str) -> None:
    restored = volume_lv(source=Source(SourceKind.SNAPSHOT, "node-1/localcsi-vg/snap-aaaa"))
    node = Node(restored)
    node.fs.signatures[restored.device_path] = Signature(fs_type, "filesystem")
    node.fs.paths[TARGET] = DIRECTORY
    node.publish(restored, capability=mount_cap(fs_type))
    assert node.fs.changes == [
        ("mount", restored.device_path, TARGET, fs_type, ()),
        ("resize", fs_type, restored.device_path, TARGET),
    ]


def test_a_restored_filesystem_mounted_read_only_is_not_grown() -> None:
    restored = volume_lv(source=Source(SourceKind.VOLUME, "node-1/localcsi-vg/csi-bbbb"))
    node = Node(restored)
    node.fs.signatures[restored.device_path] = Signature("ext4", "filesystem")
    node.fs.paths[TARGET] = DIRECTORY
    node.publish(restored, capability=mount_cap(flags=("ro",)))
    assert [change[0] for change in node.fs.changes] == ["mount"]


@pytest.mark.parametrize(
    ("signature", "requested", "words"),
    [
        (Signature("xfs", "filesystem"), "ext4", "holds a xfs filesystem, not the ext4"),
        (Signature("btrfs", "filesystem"), "", "btrfs (filesystem) signature"),
        (Signature("swap", "other"), "", "swap (other) signature"),
        (Signature("LVM2_member", "raid"), "ext4", "LVM2_member (raid) signature"),
        (Signature("gpt", "partition table"), "", "gpt (partition table) signature"),
        (Signature("ambivalent", "several signatures"), "", "never formatted over"),
    ],
)
def test_a_device_with_another_signature_is_refused_never_formatted(
    signature: Signature, requested: str, words: str
) -> None:
    node = Node(LV)
    node.fs.signatures[LV.device_path] = signature
    with pytest.raises(CoreError) as raised:
        node.publish(LV, capability=mount_cap(requested))
    assert raised.value.code == "FAILED_PRECONDITION"
    assert words in raised.value.message
    assert node.fs.changes == []


def test_a_volume_created_for_block_is_never_published_as_a_filesystem() -> None:
    lv = volume_lv(access="block")
    node = Node(lv)
    assert code_of(node.publish, lv, TARGET, mount_cap()) == "FAILED_PRECONDITION"
    assert node.fs.changes == []


def test_the_target_must_be_a_directory_for_a_filesystem() -> None:
    node = Node(LV)
    node.fs.paths[TARGET] = EMPTY_FILE
    assert code_of(node.publish, LV) == "FAILED_PRECONDITION"
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


def test_a_failed_read_only_remount_leaves_nothing_writable_mounted() -> None:
    node = Node(LV)
    node.fs.fail_remount = True
    assert code_of(node.publish, LV, TARGET, mount_cap(), True) == "FAILED_PRECONDITION"
    assert node.fs.find_mount(TARGET) is None
    assert node.fs.changes[-1] == ("umount", TARGET)


def test_publishing_again_with_the_same_capability_changes_nothing() -> None:
    node = Node(LV)
    capability = mount_cap("ext4", ("noatime", "nodev"))
    node.publish(LV, capability=capability, readonly=True)
    changes = list(node.fs.changes)
    node.publish(LV, capability=capability, readonly=True)
    node.publish(LV, capability=mount_cap("", ("nodev",)), readonly=True)
    assert node.fs.changes == changes


@pytest.mark.parametrize(
    ("capability", "readonly", "words"),
    [
        (mount_cap(), True, "read-write"),
        (mount_cap("xfs"), False, "with ext4"),
        (mount_cap(flags=("noexec",)), False, "without noexec"),
        (block_cap(), False, "as a filesystem"),
    ],
)
def test_publishing_again_differently_is_already_exists(capability: Capability, readonly: bool, words: str) -> None:
    node = Node(LV)
    node.publish(LV, capability=mount_cap("ext4"))
    changes = list(node.fs.changes)
    with pytest.raises(CoreError) as raised:
        node.publish(LV, capability=capability, readonly=readonly)
    assert (raised.value.code, words in raised.value.message) == ("ALREADY_EXISTS", True), raised.value.message
    assert node.fs.changes == changes


def test_another_device_at_the_target_is_already_exists() -> None:
    other = volume_lv("csi-bbbb", minor=2)
    node = Node(LV, other)
    node.publish(other)
    assert code_of(node.publish, LV) == "ALREADY_EXISTS"
    mount = node.fs.find_mount(TARGET)
    assert mount is not None and mount.source == other.mapper_path


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


# -- publish: block --------------------------------------------------------------------------------


def test_block_publish_binds_the_device_on_a_new_file() -> None:
    node = Node(LV)
    node.publish(LV, BLOCK_TARGET, block_cap(), readonly=True)
    assert node.fs.changes == [
        ("mkdir", BLOCK_TARGET.rpartition("/")[0]),
        ("touch", BLOCK_TARGET),
        ("bind", LV.device_path, BLOCK_TARGET),
        ("remount-ro", BLOCK_TARGET),
    ]
    node.publish(LV, BLOCK_TARGET, block_cap(), readonly=True)
    assert len(node.fs.changes) == 4, "a repeated block publish must change nothing"


def test_block_publish_onto_a_directory_is_refused() -> None:
    node = Node(LV)
    node.fs.paths[BLOCK_TARGET] = DIRECTORY
    assert code_of(node.publish, LV, BLOCK_TARGET, block_cap()) == "FAILED_PRECONDITION"
    assert node.fs.changes == []
