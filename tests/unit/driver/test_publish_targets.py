"""What a publish puts at its target path, and what unpublish recognises and removes there
(``localcsi.driver.publish_targets``), through the node service over in-memory adapters."""

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

from localcsi.core.capabilities import Capability
from localcsi.core.errors import CoreError
from localcsi.core.sizes import MiB as MIB
from localcsi.core.tags import Source, SourceKind
from localcsi.fs.types import DeviceNumber, Mount, PathInfo, PathKind, Signature

pytestmark = pytest.mark.unit

# -- publish: filesystems --------------------------------------------------------------------------


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


def test_the_target_must_be_a_directory_for_a_filesystem() -> None:
    node = Node(LV)
    node.fs.paths[TARGET] = EMPTY_FILE
    assert code_of(node.publish, LV) == "FAILED_PRECONDITION"
    assert node.fs.changes == []


def test_a_failed_read_only_remount_leaves_nothing_writable_mounted() -> None:
    node = Node(LV)
    node.fs.fail_remount = True
    assert code_of(node.publish, LV, TARGET, mount_cap(), True) == "FAILED_PRECONDITION"
    assert node.fs.find_mount(TARGET) is None
    assert node.fs.changes[-1] == ("umount", TARGET)


# -- publish: again at the same target -------------------------------------------------------------


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


# -- unpublish: what is at the target, and what is removed -----------------------------------------


def test_unpublish_of_a_deleted_block_volume_unmounts_its_leftover_node() -> None:
    node = Node(LV)
    node.publish(LV, BLOCK_TARGET, block_cap())
    del node.lvm.lvs[(VG, LV.name)]  # lvremove: a bind-mounted node does not hold the LV open
    node.service.unpublish(GOOD_ID, BLOCK_TARGET)
    assert node.fs.changes[-2:] == [("umount", BLOCK_TARGET), ("unlink", BLOCK_TARGET)]


def test_unpublish_leaves_another_live_block_device_alone() -> None:
    other = volume_lv("csi-bbbb", minor=2)
    node = Node(LV, other)
    node.publish(other, BLOCK_TARGET, block_cap())
    node.fs.paths["/sys/dev/block/253:2"] = PathInfo(PathKind.SYMLINK)
    assert code_of(node.service.unpublish, GOOD_ID, BLOCK_TARGET) == "FAILED_PRECONDITION"
    assert code_of(node.publish, LV, BLOCK_TARGET, block_cap()) == "ALREADY_EXISTS"
    assert node.fs.find_mount(BLOCK_TARGET) is not None


def test_unpublish_recognises_a_vanished_volumes_mount_by_its_mapper_name() -> None:
    node = Node(LV)
    node.publish(LV)
    del node.lvm.lvs[(VG, LV.name)]  # e.g. its only disk is gone: lvm2 no longer lists the VG
    node.service.unpublish(GOOD_ID, TARGET)
    assert node.fs.changes[-2:] == [("umount", TARGET), ("rmdir", TARGET)]


def test_unpublish_of_a_vanished_volume_leaves_other_mounts_alone() -> None:
    node = Node()
    node.fs.paths[TARGET] = DIRECTORY
    node.fs.mounts[TARGET] = [Mount(TARGET, "/dev/sda1", "ext4", ("rw",), DeviceNumber(8, 1))]
    assert code_of(node.service.unpublish, GOOD_ID, TARGET) == "FAILED_PRECONDITION"
    assert node.fs.changes == []


def test_unpublish_of_a_deleted_volume_cleans_an_empty_target() -> None:
    node = Node()
    node.fs.paths[TARGET] = DIRECTORY
    node.service.unpublish(GOOD_ID, TARGET)
    assert node.fs.changes == [("rmdir", TARGET)]


@pytest.mark.parametrize(
    "info", [PathInfo(PathKind.FILE, size_bytes=10), PathInfo(PathKind.SYMLINK), PathInfo(PathKind.OTHER)]
)
def test_unpublish_never_deletes_what_publish_did_not_create(info: PathInfo) -> None:
    node = Node(LV)
    node.fs.paths[TARGET] = info
    assert code_of(node.service.unpublish, GOOD_ID, TARGET) == "FAILED_PRECONDITION"
    assert node.fs.changes == []
