import pytest

from localcsi.core.capabilities import (
    AccessType,
    Capability,
    effective_fs_type,
    unsupported_reason,
    validate_capabilities,
)
from localcsi.core.errors import InvalidArgument
from localcsi.core.params import FsType, VolumeParams

pytestmark = pytest.mark.unit

MOUNT = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)
BLOCK = Capability("SINGLE_NODE_WRITER", AccessType.BLOCK)


def test_missing_capabilities_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="required"):
        validate_capabilities([])
    with pytest.raises(InvalidArgument, match="access type"):
        validate_capabilities([Capability("SINGLE_NODE_WRITER", None)])
    with pytest.raises(InvalidArgument, match="access mode"):
        validate_capabilities([Capability("UNKNOWN", AccessType.MOUNT)])


def test_single_node_mount_and_block_are_supported() -> None:
    validate_capabilities([MOUNT, BLOCK])
    assert unsupported_reason([MOUNT, BLOCK, Capability("SINGLE_NODE_READER_ONLY", AccessType.MOUNT, "xfs")]) is None


@pytest.mark.parametrize(
    ("capability", "reason"),
    [
        (Capability("MULTI_NODE_MULTI_WRITER", AccessType.MOUNT), "one node"),
        (Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "btrfs"), "btrfs"),
        (Capability("SINGLE_NODE_WRITER", AccessType.BLOCK, "ext4"), "no filesystem"),
    ],
)
def test_unsupported_capabilities_say_why(capability: Capability, reason: str) -> None:
    message = unsupported_reason([MOUNT, capability])
    assert message is not None and reason in message


def test_filesystem_choice() -> None:
    assert effective_fs_type([MOUNT], VolumeParams()) is FsType.EXT4
    assert effective_fs_type([MOUNT], VolumeParams(fs_type=FsType.XFS)) is FsType.XFS
    xfs = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "xfs")
    assert effective_fs_type([xfs, BLOCK], VolumeParams()) is FsType.XFS
    with pytest.raises(InvalidArgument, match="parameters ask for ext4"):
        effective_fs_type([xfs], VolumeParams(fs_type=FsType.EXT4))
    with pytest.raises(InvalidArgument, match="different filesystems"):
        effective_fs_type([xfs, Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "ext4")], VolumeParams())
    with pytest.raises(InvalidArgument, match="not supported"):
        effective_fs_type([Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "zfs")], VolumeParams())
