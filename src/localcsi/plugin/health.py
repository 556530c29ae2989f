"""``GET /healthz`` for the kubelet's liveness probe, in place of the livenessprobe sidecar.

Each request calls the plugin's own Identity ``Probe`` over its real CSI endpoint, with a short
timeout: 200 ``ok`` when it answers ready, 503 with the reason otherwise. Any other path is 404.
Going through the endpoint rather than asking the servicer directly also proves that the socket is
there and the gRPC server answers.
"""

from __future__ import annotations

from typing import Final

import grpc

from localcsi.csi import csi_pb2, services
from localcsi.metrics.http import HEALTH_PATH, ObservabilityServer, Prober, split_host_port

# The server itself is shared with /metrics (localcsi.metrics.http); without a registry it serves /healthz alone.
HealthServer = ObservabilityServer
__all__ = [
    "HEALTH_PATH",
    "HealthServer",
    "Prober",
    "endpoint_health_server",
    "endpoint_prober",
    "probe_endpoint",
    "split_host_port",
]

PROBE_TIMEOUT_SECONDS: Final = 3.0


def grpc_target(endpoint: str) -> str:
    """A --endpoint (unix:///PATH or tcp://HOST:PORT) as a gRPC channel target."""
    if endpoint.startswith("unix://"):
        return endpoint  # gRPC's own syntax for an absolute socket path
    return endpoint.removeprefix("tcp://")


def probe_endpoint(endpoint: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """Call Identity.Probe at endpoint: None when ready, else why not."""
    with grpc.insecure_channel(grpc_target(endpoint)) as channel:
        try:
            response = services.identity_stub(channel).Probe(csi_pb2.ProbeRequest(), timeout=timeout)
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call):
                return f"Probe failed: {error.code().name}: {error.details()}"
            return f"Probe failed: {error}"
    # An unset ready means ready (CSI spec: the plugin then answers Probe only once it is ready).
    if response.HasField("ready") and not response.ready.value:
        return "Probe answered not ready"
    return None


def endpoint_prober(endpoint: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> Prober:
    """A prober that calls Identity.Probe at the CSI endpoint."""
    return lambda: probe_endpoint(endpoint, timeout)


def endpoint_health_server(address: str, endpoint: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> HealthServer:
    """A HealthServer on address that probes the CSI endpoint."""
    return HealthServer(address, endpoint_prober(endpoint, timeout))
