import pytest

from localcsi.core.capabilities import AccessType, Capability, validate_capabilities
from localcsi.core.errors import InvalidArgument
from localcsi.csi import csi_pb2
from localcsi.plugin.capability import capability_from_proto

pytestmark = pytest.mark.unit

Cap = csi_pb2.VolumeCapability
WRITER = Cap.AccessMode(mode=Cap.AccessMode.SINGLE_NODE_WRITER)


def test_mount_block_and_neither() -> None:
    mount = Cap(mount=Cap.MountVolume(fs_type="xfs", mount_flags=["noatime"]), access_mode=WRITER)
    assert capability_from_proto(mount) == Capability("SINGLE_NODE_WRITER", AccessType.MOUNT, "xfs", ("noatime",))
    assert capability_from_proto(Cap(block=Cap.BlockVolume(), access_mode=WRITER)) == Capability(
        "SINGLE_NODE_WRITER", AccessType.BLOCK
    )
    assert capability_from_proto(Cap(access_mode=WRITER)) == Capability("SINGLE_NODE_WRITER", None)


@pytest.mark.parametrize("value", [99, -3, 2**31 - 1])
def test_an_unknown_access_mode_is_refused_as_invalid_not_internal(value: int) -> None:
    proto = Cap(block=Cap.BlockVolume())
    proto.access_mode.mode = value  # type: ignore[assignment]  # what a newer CO or a fuzzer sends
    capability = capability_from_proto(proto)
    assert capability == Capability(f"unknown access mode {value}", AccessType.BLOCK)
    with pytest.raises(InvalidArgument, match=f"unknown access mode {value}"):
        validate_capabilities([capability])
