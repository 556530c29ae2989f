"""Small builders for CSI requests, shared by the scenario tests, the demo and the benchmarks."""

from __future__ import annotations

from localcsi.csi import csi_pb2

GIB = 1024**3
MIB = 1024**2
AccessMode = csi_pb2.VolumeCapability.AccessMode


def mount_capability(fs_type: str = "ext4", flags: tuple[str, ...] = ()) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)),
        access_mode=AccessMode(mode=AccessMode.SINGLE_NODE_WRITER),
    )


def block_capability() -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(),
        access_mode=AccessMode(mode=AccessMode.SINGLE_NODE_WRITER),
    )


def snapshot_source(snapshot_id: str) -> csi_pb2.VolumeContentSource:
    return csi_pb2.VolumeContentSource(snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot_id))


def volume_source(volume_id: str) -> csi_pb2.VolumeContentSource:
    return csi_pb2.VolumeContentSource(volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=volume_id))


def create_volume(
    name: str,
    size: int = GIB,
    parameters: dict[str, str] | None = None,
    capability: csi_pb2.VolumeCapability | None = None,
    source: csi_pb2.VolumeContentSource | None = None,
) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[capability or mount_capability()],
        parameters=parameters or {},
        volume_content_source=source,
    )


def publish(
    volume_id: str, target: str, capability: csi_pb2.VolumeCapability | None = None, readonly: bool = False
) -> csi_pb2.NodePublishVolumeRequest:
    return csi_pb2.NodePublishVolumeRequest(
        volume_id=volume_id,
        target_path=target,
        volume_capability=capability or mount_capability(),
        readonly=readonly,
    )


def unpublish(volume_id: str, target: str) -> csi_pb2.NodeUnpublishVolumeRequest:
    return csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target)


def create_snapshot(
    source_volume_id: str, name: str, parameters: dict[str, str] | None = None
) -> csi_pb2.CreateSnapshotRequest:
    return csi_pb2.CreateSnapshotRequest(source_volume_id=source_volume_id, name=name, parameters=parameters or {})


def expand(volume_id: str, size: int) -> csi_pb2.ControllerExpandVolumeRequest:
    return csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=size)
    )


def node_expand(volume_id: str, path: str, size: int) -> csi_pb2.NodeExpandVolumeRequest:
    return csi_pb2.NodeExpandVolumeRequest(
        volume_id=volume_id, volume_path=path, capacity_range=csi_pb2.CapacityRange(required_bytes=size)
    )
