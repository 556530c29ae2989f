"""Kubelet plugin registration, in place of the node-driver-registrar sidecar.

The kubelet's plugin watcher finds ``<registration dir>/<driver>-reg.sock``, dials it and calls the
``pluginregistration.Registration`` service: GetInfo tells it the driver name and where the kubelet
reaches our CSI socket on the host; NotifyRegistrationStatus brings its verdict. A rejection ends
the plugin with a non-zero status (``on_rejected``), as node-driver-registrar does, so the pod
restarts and the kubelet tries again. Removing the socket at shutdown makes the kubelet forget us.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Final

import grpc

from localcsi.csi import pluginregistration_pb2, pluginregistration_pb2_grpc
from localcsi.logs import fields
from localcsi.plugin.config import PluginConfig
from localcsi.plugin.server import bind_private_socket, remove_socket

log = logging.getLogger(__name__)

CSI_PLUGIN_TYPE: Final = "CSIPlugin"  # pluginregistration/v1 constants.go
SUPPORTED_VERSIONS: Final = ("1.0.0",)  # what node-driver-registrar announces for CSI v1
SOCKET_SUFFIX: Final = "-reg.sock"
MAX_SOCKET_PATH_BYTES: Final = 107  # sockaddr_un.sun_path holds 108 bytes with the final NUL
WORKERS: Final = 2

# Called with the kubelet's error when it rejects the registration; it must make the process exit.
OnRejected = Callable[[str], None]


def registration_socket_path(registration_dir: str, driver_name: str) -> Path:
    return Path(registration_dir) / f"{driver_name}{SOCKET_SUFFIX}"


def add_registration_servicer(servicer: RegistrationServicer, server: grpc.Server) -> None:
    """Typed door into the generated module, which grpcio-tools ships without type hints."""
    pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


class RegistrationServicer(pluginregistration_pb2_grpc.RegistrationServicer):
    def __init__(self, driver_name: str, kubelet_endpoint: str, on_rejected: OnRejected) -> None:
        self.driver_name = driver_name
        self.kubelet_endpoint = kubelet_endpoint
        self.on_rejected = on_rejected

    def GetInfo(
        self, request: pluginregistration_pb2.InfoRequest, context: grpc.ServicerContext
    ) -> pluginregistration_pb2.PluginInfo:
        log.info(
            "the kubelet asked who we are: %s at %s",
            self.driver_name,
            self.kubelet_endpoint,
            extra=fields(driver=self.driver_name, endpoint=self.kubelet_endpoint),
        )
        return pluginregistration_pb2.PluginInfo(
            type=CSI_PLUGIN_TYPE,
            name=self.driver_name,
            endpoint=self.kubelet_endpoint,
            supported_versions=SUPPORTED_VERSIONS,
        )

    def NotifyRegistrationStatus(
        self, request: pluginregistration_pb2.RegistrationStatus, context: grpc.ServicerContext
    ) -> pluginregistration_pb2.RegistrationStatusResponse:
        if request.plugin_registered:
            log.info("registered with the kubelet as %s", self.driver_name, extra=fields(driver=self.driver_name))
        else:
            error = request.error or "(the kubelet gave no reason)"
            log.error("the kubelet rejected the registration: %s", error, extra=fields(error=error))
            self.on_rejected(error)
        return pluginregistration_pb2.RegistrationStatusResponse()


class RegistrationServer:
    """The Registration service on its own 0600 unix socket (the kubelet runs as root)."""

    def __init__(self, config: PluginConfig, on_rejected: OnRejected) -> None:
        if not config.registers_with_kubelet:
            raise ValueError("RegistrationServer needs a registration_dir")
        self.socket_path = registration_socket_path(config.registration_dir, config.driver_name)
        self.servicer = RegistrationServicer(config.driver_name, config.kubelet_registration_path, on_rejected)
        self._server: grpc.Server | None = None

    def start(self) -> None:
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH_BYTES:
            limit = MAX_SOCKET_PATH_BYTES
            raise RuntimeError(f"{self.socket_path}: longer than the {limit} bytes a unix socket path may have")
        executor = futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="registration")
        server = grpc.server(executor)
        add_registration_servicer(self.servicer, server)
        bind_private_socket(server, self.socket_path)
        server.start()
        self._server = server
        log.info(
            "waiting for the kubelet's plugin watcher on %s",
            self.socket_path,
            extra=fields(socket=str(self.socket_path), kubelet_endpoint=self.servicer.kubelet_endpoint),
        )

    def stop(self, grace: float | None = None) -> None:
        """Stop serving and remove the socket, so that the kubelet deregisters the plugin."""
        if self._server is None:
            return
        self._server.stop(grace).wait()
        self._server = None
        remove_socket(self.socket_path)  # gRPC removes it too when it stops listening; make sure
        log.info("removed %s", self.socket_path, extra=fields(socket=str(self.socket_path)))
