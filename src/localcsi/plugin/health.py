"""``GET /healthz`` for the kubelet's liveness probe, in place of the livenessprobe sidecar.

Each request calls the plugin's own Identity ``Probe`` over its real CSI endpoint, with a short
timeout: 200 ``ok`` when it answers ready, 503 with the reason otherwise. Any other path is 404.
Going through the endpoint rather than asking the servicer directly also proves that the socket is
there and the gRPC server answers.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import urlsplit

import grpc

from localcsi.csi import csi_pb2, services

log = logging.getLogger(__name__)

HEALTH_PATH: Final = "/healthz"
PROBE_TIMEOUT_SECONDS: Final = 3.0

# Returns None when the plugin is ready, else the reason it is not.
Prober = Callable[[], str | None]


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


def split_host_port(address: str) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT or :PORT (every interface); port 0 picks a free one."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r}: expected HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


class HealthServer(ThreadingHTTPServer):
    """Serves HEALTH_PATH from a thread; ``start`` and ``stop`` bracket its life."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: str, prober: Prober) -> None:
        host, port = split_host_port(address)
        self.prober = prober
        self._thread: threading.Thread | None = None
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _HealthHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="localcsi-health", daemon=True
        )
        self._thread.start()
        log.info("serving %s on port %d", HEALTH_PATH, self.port)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def check(self) -> str | None:
        try:
            return self.prober()
        except Exception as error:
            log.exception("health probe failed unexpectedly")
            return f"probe error: {type(error).__name__}: {error}"


def endpoint_health_server(address: str, endpoint: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> HealthServer:
    """A HealthServer on address that probes the CSI endpoint."""
    return HealthServer(address, lambda: probe_endpoint(endpoint, timeout))


class _HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        if urlsplit(self.path).path != HEALTH_PATH:
            self._reply(HTTPStatus.NOT_FOUND, f"not found; try {HEALTH_PATH}\n")
            return
        reason = self.server.check()
        if reason is None:
            self._reply(HTTPStatus.OK, "ok")
            return
        log.warning("health check failed: %s", reason)
        self._reply(HTTPStatus.SERVICE_UNAVAILABLE, reason)

    def _reply(self, status: HTTPStatus, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("health: %s %s", self.address_string(), format % args)
