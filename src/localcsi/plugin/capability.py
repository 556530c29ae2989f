"""Protobuf capabilities to the core's ``Capability``, for the Controller and Node servicers alike."""

from __future__ import annotations

from localcsi.core.capabilities import AccessType, Capability
from localcsi.csi import csi_pb2

Mode = csi_pb2.VolumeCapability.AccessMode.Mode


def capability_from_proto(proto: csi_pb2.VolumeCapability) -> Capability:
    # proto3 enums are open: a value this build does not know still arrives, and the core refuses it by name.
    value = proto.access_mode.mode
    mode = Mode.Name(value) if value in Mode.values() else f"unknown access mode {value}"
    if proto.HasField("mount"):
        return Capability(mode, AccessType.MOUNT, proto.mount.fs_type, tuple(proto.mount.mount_flags))
    if proto.HasField("block"):
        return Capability(mode, AccessType.BLOCK)
    return Capability(mode, None)
