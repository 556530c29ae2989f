"""The CSI Controller service over gRPC: protobuf in, ``ControllerDriver`` calls, protobuf out.

No PUBLISH_UNPUBLISH_VOLUME: a local LV needs no attach step. Every method raises CoreError for a
failure; ``translate_errors`` turns it into the status code.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import Int64Value

from localcsi.core.capabilities import Capability
from localcsi.core.errors import InvalidArgument
from localcsi.core.model import Snapshot, Volume
from localcsi.core.tags import Source, SourceKind
from localcsi.csi import csi_pb2, csi_pb2_grpc
from localcsi.driver.backend import volume_context
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.devices import LocalDevices
from localcsi.driver.exclusive_volumes import ExclusiveVolumes
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.driver.mountpoints import LocalMountPoints
from localcsi.driver.requests import (
    CapacityRequest,
    CreateVolumeRequest,
    ExpandVolumeRequest,
    ListSnapshotsRequest,
)
from localcsi.driver.topology import TopologyRequirement, node_topology
from localcsi.fs.adapter import Filesystems
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner
from localcsi.plugin.capability import capability_from_proto
from localcsi.plugin.config import Mode, PluginConfig
from localcsi.plugin.errors import Unimplemented, translate_errors

log = logging.getLogger(__name__)

Rpc = csi_pb2.ControllerServiceCapability.RPC
CAPABILITIES = (
    Rpc.CREATE_DELETE_VOLUME,
    Rpc.CREATE_DELETE_SNAPSHOT,
    Rpc.LIST_SNAPSHOTS,
    Rpc.LIST_VOLUMES,
    Rpc.CLONE_VOLUME,
    Rpc.EXPAND_VOLUME,
    Rpc.GET_CAPACITY,
    Rpc.GET_VOLUME,
    Rpc.VOLUME_CONDITION,
    Rpc.MODIFY_VOLUME,
)
ContentSource = csi_pb2.VolumeContentSource


def _capabilities(protos: list[csi_pb2.VolumeCapability]) -> tuple[Capability, ...]:
    return tuple(capability_from_proto(proto) for proto in protos)


def _source(request: csi_pb2.CreateVolumeRequest) -> Source | None:
    if not request.HasField("volume_content_source"):
        return None
    proto = request.volume_content_source
    if proto.HasField("snapshot"):
        return Source(SourceKind.SNAPSHOT, proto.snapshot.snapshot_id)
    if proto.HasField("volume"):
        return Source(SourceKind.VOLUME, proto.volume.volume_id)
    raise InvalidArgument("volume_content_source names neither a snapshot nor a volume")


def _topology(request: csi_pb2.CreateVolumeRequest) -> TopologyRequirement | None:
    if not request.HasField("accessibility_requirements"):
        return None
    proto = request.accessibility_requirements
    return TopologyRequirement(
        requisite=tuple(dict(t.segments) for t in proto.requisite),
        preferred=tuple(dict(t.segments) for t in proto.preferred),
    )


def _source_proto(source: Source | None) -> ContentSource | None:
    if source is None:
        return None
    if source.kind is SourceKind.SNAPSHOT:
        return ContentSource(snapshot=ContentSource.SnapshotSource(snapshot_id=source.id))
    return ContentSource(volume=ContentSource.VolumeSource(volume_id=source.id))


def volume_proto(volume: Volume) -> csi_pb2.Volume:
    return csi_pb2.Volume(
        capacity_bytes=volume.size_bytes,
        volume_id=volume.id,
        volume_context=volume_context(volume),
        content_source=_source_proto(volume.source),
        accessible_topology=[csi_pb2.Topology(segments=node_topology(volume.ref.node))],
    )


def snapshot_proto(snapshot: Snapshot) -> csi_pb2.Snapshot:
    created = Timestamp()
    # lvm2 always reports lv_time unless report/time_format is customised; the time still must be set.
    created.FromDatetime(snapshot.created or datetime.now(tz=UTC))
    return csi_pb2.Snapshot(
        size_bytes=snapshot.size_bytes,
        snapshot_id=snapshot.id,
        source_volume_id=snapshot.source_volume_id,
        creation_time=created,
        ready_to_use=snapshot.ready,
    )


class ControllerServicer(csi_pb2_grpc.ControllerServicer):
    def __init__(self, driver: ControllerDriver) -> None:
        self.driver = driver

    def _condition(self, volume: Volume) -> csi_pb2.VolumeCondition:
        condition = self.driver.backend.condition(volume)
        return csi_pb2.VolumeCondition(abnormal=condition.abnormal, message=condition.message)

    @translate_errors
    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        volume = self.driver.create_volume(
            CreateVolumeRequest(
                name=request.name,
                capabilities=_capabilities(list(request.volume_capabilities)),
                required_bytes=request.capacity_range.required_bytes,
                limit_bytes=request.capacity_range.limit_bytes,
                parameters=dict(request.parameters),
                source=_source(request),
                topology=_topology(request),
                mutable_parameters=dict(request.mutable_parameters),
            )
        )
        return csi_pb2.CreateVolumeResponse(volume=volume_proto(volume))

    @translate_errors
    def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        if not request.volume_id:
            raise InvalidArgument("volume_id is required")
        self.driver.delete_volume(request.volume_id)
        return csi_pb2.DeleteVolumeResponse()

    @translate_errors
    def ControllerPublishVolume(
        self, request: csi_pb2.ControllerPublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerPublishVolumeResponse:
        raise Unimplemented("ControllerPublishVolume is not supported: local volumes need no attach step")

    @translate_errors
    def ControllerUnpublishVolume(
        self, request: csi_pb2.ControllerUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerUnpublishVolumeResponse:
        raise Unimplemented("ControllerUnpublishVolume is not supported: local volumes need no attach step")

    @translate_errors
    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        reason = self.driver.validate_capabilities(
            request.volume_id, _capabilities(list(request.volume_capabilities)), dict(request.parameters)
        )
        if reason is not None:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=reason)
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=dict(request.volume_context),
            volume_capabilities=list(request.volume_capabilities),
            parameters=dict(request.parameters),
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    @translate_errors
    def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        page = self.driver.list_volumes(request.max_entries, request.starting_token)
        Entry, Status = csi_pb2.ListVolumesResponse.Entry, csi_pb2.ListVolumesResponse.VolumeStatus
        entries = [
            Entry(volume=volume_proto(volume), status=Status(volume_condition=self._condition(volume)))
            for volume in page.entries
        ]
        return csi_pb2.ListVolumesResponse(entries=entries, next_token=page.next_token)

    @translate_errors
    def ControllerGetVolume(
        self, request: csi_pb2.ControllerGetVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetVolumeResponse:
        volume = self.driver.get_volume(request.volume_id)
        status = csi_pb2.ControllerGetVolumeResponse.VolumeStatus(volume_condition=self._condition(volume))
        return csi_pb2.ControllerGetVolumeResponse(volume=volume_proto(volume), status=status)

    @translate_errors
    def GetCapacity(
        self, request: csi_pb2.GetCapacityRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetCapacityResponse:
        topology = dict(request.accessible_topology.segments) if request.HasField("accessible_topology") else None
        result = self.driver.capacity(
            CapacityRequest(
                parameters=dict(request.parameters),
                capabilities=_capabilities(list(request.volume_capabilities)),
                topology=topology,
            )
        )
        return csi_pb2.GetCapacityResponse(
            available_capacity=result.available_bytes,
            maximum_volume_size=Int64Value(value=result.maximum_volume_bytes),
        )

    @translate_errors
    def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        capabilities = [csi_pb2.ControllerServiceCapability(rpc=Rpc(type=kind)) for kind in CAPABILITIES]
        return csi_pb2.ControllerGetCapabilitiesResponse(capabilities=capabilities)

    @translate_errors
    def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateSnapshotResponse:
        snapshot = self.driver.snapshots.create(request.name, request.source_volume_id, dict(request.parameters))
        return csi_pb2.CreateSnapshotResponse(snapshot=snapshot_proto(snapshot))

    @translate_errors
    def DeleteSnapshot(
        self, request: csi_pb2.DeleteSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteSnapshotResponse:
        if not request.snapshot_id:
            raise InvalidArgument("snapshot_id is required")
        self.driver.snapshots.delete(request.snapshot_id)
        return csi_pb2.DeleteSnapshotResponse()

    @translate_errors
    def ListSnapshots(
        self, request: csi_pb2.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListSnapshotsResponse:
        page = self.driver.snapshots.list(
            ListSnapshotsRequest(
                max_entries=request.max_entries,
                starting_token=request.starting_token,
                snapshot_id=request.snapshot_id,
                source_volume_id=request.source_volume_id,
            )
        )
        entries = [csi_pb2.ListSnapshotsResponse.Entry(snapshot=snapshot_proto(s)) for s in page.entries]
        return csi_pb2.ListSnapshotsResponse(entries=entries, next_token=page.next_token)

    @translate_errors
    def GetSnapshot(
        self, request: csi_pb2.GetSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetSnapshotResponse:
        raise Unimplemented("GetSnapshot is not supported; use ListSnapshots with snapshot_id")

    @translate_errors
    def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        capability = capability_from_proto(request.volume_capability) if request.HasField("volume_capability") else None
        volume, node_expansion = self.driver.expand_volume(
            ExpandVolumeRequest(
                volume_id=request.volume_id,
                required_bytes=request.capacity_range.required_bytes,
                limit_bytes=request.capacity_range.limit_bytes,
                capability=capability,
            )
        )
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=volume.size_bytes, node_expansion_required=node_expansion
        )

    @translate_errors
    def ControllerModifyVolume(
        self, request: csi_pb2.ControllerModifyVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerModifyVolumeResponse:
        self.driver.modify_volume(request.volume_id, dict(request.mutable_parameters))
        return csi_pb2.ControllerModifyVolumeResponse()


def build_controller_servicer(config: PluginConfig) -> ControllerServicer:
    """Standalone mode: lvm2 on this node, only in VGs matching --vg-pattern. Controller mode (cluster):
    LogicalVolume resources that each node's agent carries out."""
    if config.mode is Mode.CONTROLLER:
        from localcsi.driver.cluster_backend import cluster_backend  # noqa: PLC0415 - standalone needs no apiserver client
        from localcsi.driver.cluster_exclusive import ClusterExclusiveVolumes  # noqa: PLC0415
        from localcsi.k8s.client import api_client  # noqa: PLC0415

        cluster = cluster_backend(api_client(config.kubeconfig), timeout=config.operation_timeout).start()
        log.info("cluster mode: volumes are LogicalVolume resources; waiting up to %gs for a node's agent",
                 config.operation_timeout)  # fmt: skip
        return ControllerServicer(ControllerDriver(cluster, exclusive=ClusterExclusiveVolumes(cluster)))
    runner = SubprocessRunner(nsenter=config.lvm_nsenter)
    lvm = Lvm(runner)
    backend = LocalLvmBackend(lvm, config.node_id, vg_allowed=config.vg_allowed)
    devices = LocalDevices(runner, config.node_id, config.device_patterns, lvm=lvm, on_change=backend.view.changed)
    mount_points = LocalMountPoints(Filesystems(runner), config.node_id, config.mount_point_patterns)
    exclusive = ExclusiveVolumes(devices if config.device_patterns else None,
                                 mount_points if config.mount_point_patterns else None)  # fmt: skip
    return ControllerServicer(ControllerDriver(backend, exclusive=exclusive))
