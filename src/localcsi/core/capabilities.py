"""Volume capabilities, checked as the CSI spec asks: local volumes attach to one node at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from localcsi.core.errors import InvalidArgument
from localcsi.core.params import FsType, VolumeParams

# Names of csi.v1 VolumeCapability.AccessMode.Mode values.
SINGLE_NODE_MODES = frozenset(
    {"SINGLE_NODE_WRITER", "SINGLE_NODE_READER_ONLY", "SINGLE_NODE_SINGLE_WRITER", "SINGLE_NODE_MULTI_WRITER"}
)
MULTI_NODE_MODES = frozenset({"MULTI_NODE_READER_ONLY", "MULTI_NODE_SINGLE_WRITER", "MULTI_NODE_MULTI_WRITER"})


class AccessType(StrEnum):
    MOUNT = "mount"
    BLOCK = "block"


@dataclass(frozen=True)
class Capability:
    access_mode: str  # an AccessMode.Mode name; "UNKNOWN" when unset
    access_type: AccessType | None  # None when the request set neither mount nor block
    fs_type: str = ""
    mount_flags: tuple[str, ...] = ()


def validate_capabilities(capabilities: Sequence[Capability]) -> None:
    """Reject requests missing required capability fields (INVALID_ARGUMENT)."""
    if not capabilities:
        raise InvalidArgument("volume_capabilities is required: give at least one capability")
    for cap in capabilities:
        if cap.access_type is None:
            raise InvalidArgument("each volume capability needs an access type: mount or block")
        if cap.access_mode not in SINGLE_NODE_MODES | MULTI_NODE_MODES:
            raise InvalidArgument(f"each volume capability needs an access mode; got {cap.access_mode!r}")


def unsupported_reason(capabilities: Sequence[Capability]) -> str | None:
    """Why these (valid) capabilities cannot be met, or None if they all can."""
    for cap in capabilities:
        if cap.access_mode in MULTI_NODE_MODES:
            return f"{cap.access_mode} is not supported: a local volume lives on one node"
        if cap.access_type is AccessType.MOUNT and cap.fs_type and cap.fs_type not in set(FsType):
            return f"filesystem {cap.fs_type!r} is not supported; use one of: {', '.join(FsType)}"
        if cap.access_type is AccessType.BLOCK and cap.fs_type:
            return "a block volume has no filesystem: leave fs_type empty"
    return None


def effective_fs_type(capabilities: Sequence[Capability], params: VolumeParams) -> FsType:
    """The filesystem for mount volumes: the capability's fs_type, else the parameter, else ext4."""
    requested = {cap.fs_type for cap in capabilities if cap.access_type is AccessType.MOUNT and cap.fs_type}
    if len(requested) > 1:
        raise InvalidArgument(f"volume capabilities ask for different filesystems: {sorted(requested)}")
    if requested:
        (name,) = requested
        if name not in set(FsType):
            raise InvalidArgument(f"filesystem {name!r} is not supported; use one of: {', '.join(FsType)}")
        fs_type = FsType(name)
        if params.fs_type is not None and params.fs_type is not fs_type:
            raise InvalidArgument(
                f"the volume capability asks for {fs_type} but the parameters ask for {params.fs_type}"
            )
        return fs_type
    return params.fs_type or FsType.EXT4
