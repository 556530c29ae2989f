"""Protobuf capabilities to the core's ``Capability``, for the Controller and Node servicers alike."""

from __future__ import annotations

from localcsi.core.capabilities import AccessType, Capability
from localcsi.csi import csi_pb2


def capability_from_proto(proto: csi_pb2.VolumeCapability) -> Capability:
    mode = csi_pb2.VolumeCapability.AccessMode.Mode.Name(proto.access_mode.mode)
    if proto.HasField("mount"):
        return Capability(mode, AccessType.MOUNT, proto.mount.fs_type, tuple(proto.mount.mount_flags))
    if proto.HasField("block"):
        return Capability(mode, AccessType.BLOCK)
    return Capability(mode, None)
