"""CSI Identity service."""

from __future__ import annotations

import grpc
from google.protobuf.wrappers_pb2 import BoolValue

from localcsi import __version__
from localcsi.csi import csi_pb2, csi_pb2_grpc
from localcsi.plugin.config import PluginConfig
from localcsi.plugin.errors import translate_errors

Service = csi_pb2.PluginCapability.Service
Expansion = csi_pb2.PluginCapability.VolumeExpansion


class IdentityServicer(csi_pb2_grpc.IdentityServicer):
    def __init__(self, config: PluginConfig) -> None:
        self.config = config

    @translate_errors
    def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=self.config.driver_name, vendor_version=__version__)

    @translate_errors
    def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        services = [Service.VOLUME_ACCESSIBILITY_CONSTRAINTS]
        if self.config.serves_controller:
            services.insert(0, Service.CONTROLLER_SERVICE)
        capabilities = [csi_pb2.PluginCapability(service=Service(type=kind)) for kind in services]
        capabilities.append(csi_pb2.PluginCapability(volume_expansion=Expansion(type=Expansion.ONLINE)))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=capabilities)

    @translate_errors
    def Probe(self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse(ready=BoolValue(value=True))
