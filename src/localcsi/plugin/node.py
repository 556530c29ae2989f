"""The CSI Node service over gRPC: protobuf in, ``NodeService`` calls, protobuf out.

No STAGE_UNSTAGE_VOLUME: NodePublishVolume mounts the volume straight at its target path.
"""

from __future__ import annotations

from typing import Any

import grpc

from localcsi.csi import csi_pb2, csi_pb2_grpc
from localcsi.driver.ephemeral import EphemeralVolumes
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.driver.mountpoints import LocalMountPoints
from localcsi.driver.node import ExpandRequest, NodeService, PublishRequest
from localcsi.driver.node_mountpoints import NodeServiceWithMountPoints
from localcsi.driver.pod_limits import PodIoLimits
from localcsi.fs.adapter import Filesystems
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner
from localcsi.plugin.capability import capability_from_proto
from localcsi.plugin.config import Mode, PluginConfig
from localcsi.plugin.errors import Unimplemented, translate_errors
from localcsi.plugin.io_limits import pod_io_limits

Rpc = csi_pb2.NodeServiceCapability.RPC
Usage = csi_pb2.VolumeUsage
CAPABILITIES = (Rpc.GET_VOLUME_STATS, Rpc.EXPAND_VOLUME, Rpc.VOLUME_CONDITION)


class NodeServicer(csi_pb2_grpc.NodeServicer):
    def __init__(self, service: NodeService) -> None:
        self.service = service

    @translate_errors
    def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeStageVolumeResponse:
        raise Unimplemented("NodeStageVolume is not supported: this driver publishes without staging")

    @translate_errors
    def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        raise Unimplemented("NodeUnstageVolume is not supported: this driver publishes without staging")

    @translate_errors
    def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        self.service.publish(
            PublishRequest(
                volume_id=request.volume_id,
                target_path=request.target_path,
                capability=(
                    capability_from_proto(request.volume_capability) if request.HasField("volume_capability") else None
                ),
                readonly=request.readonly,
                volume_context=dict(request.volume_context),
            )
        )
        return csi_pb2.NodePublishVolumeResponse()

    @translate_errors
    def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        self.service.unpublish(request.volume_id, request.target_path)
        return csi_pb2.NodeUnpublishVolumeResponse()

    @translate_errors
    def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        stats = self.service.stats(request.volume_id, request.volume_path)
        if stats.usage is None:
            usage = [Usage(unit=Usage.BYTES, total=stats.total_bytes)]
        else:
            fs = stats.usage
            usage = [
                Usage(unit=Usage.BYTES, total=fs.total_bytes, available=fs.available_bytes, used=fs.used_bytes),
                Usage(unit=Usage.INODES, total=fs.total_inodes, available=fs.available_inodes, used=fs.used_inodes),
            ]
        condition = csi_pb2.VolumeCondition(abnormal=stats.condition.abnormal, message=stats.condition.message)
        return csi_pb2.NodeGetVolumeStatsResponse(usage=usage, volume_condition=condition)

    @translate_errors
    def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeExpandVolumeResponse:
        size = self.service.expand(
            ExpandRequest(
                volume_id=request.volume_id,
                volume_path=request.volume_path,
                required_bytes=request.capacity_range.required_bytes,
            )
        )
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=size)

    @translate_errors
    def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=Rpc(type=kind)) for kind in CAPABILITIES]
        )

    @translate_errors
    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        info = self.service.info()
        return csi_pb2.NodeGetInfoResponse(
            node_id=info.node_id,
            max_volumes_per_node=info.max_volumes_per_node,
            accessible_topology=csi_pb2.Topology(segments=info.topology),
        )


def ephemeral_volumes(config: PluginConfig) -> EphemeralVolumes:
    """Inline ephemeral volumes on lvm2 on this node (cluster mode too: they have no resource)."""
    runner = SubprocessRunner(nsenter=config.lvm_nsenter)
    backend = LocalLvmBackend(Lvm(runner), config.node_id, vg_allowed=config.vg_allowed)
    return EphemeralVolumes(backend, Filesystems(runner))


def build_node_servicer(
    config: PluginConfig, io_limits: PodIoLimits | None = None, ephemeral: EphemeralVolumes | None = None
) -> NodeServicer:
    """The Node service on real adapters; lvm2 and mount run in PID 1's namespaces with lvm_nsenter."""
    runner = SubprocessRunner(nsenter=config.lvm_nsenter)
    common: dict[str, Any] = {
        "max_volumes_per_node": config.max_volumes_per_node,
        "vg_allowed": config.vg_allowed,
        "io_limits": io_limits or pod_io_limits(config, events=True),
        "ephemeral": ephemeral or ephemeral_volumes(config),
    }
    fs = Filesystems(runner)
    service: NodeService
    # In cluster mode the agent chose the mount point from its NodeLocalStorage: the node plugin finds a
    # volume by the owner marker at the root of whichever mount holds it.
    patterns = config.mount_point_patterns or (("/*",) if config.mode is Mode.NODE else ())
    if patterns:
        mount_points = LocalMountPoints(fs, config.node_id, patterns)
        service = NodeServiceWithMountPoints(config.node_id, fs, Lvm(runner), mount_points=mount_points, **common)
    else:
        service = NodeService(config.node_id, fs, Lvm(runner), **common)
    return NodeServicer(service)
