"""/healthz against a real gRPC server holding only the Identity service, on a unix socket."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf.wrappers_pb2 import BoolValue

from localcsi.csi import csi_pb2, services
from localcsi.plugin.config import PluginConfig
from localcsi.plugin.health import (
    HealthServer,
    endpoint_health_server,
    grpc_target,
    probe_endpoint,
    split_host_port,
)
from localcsi.plugin.identity import IdentityServicer
from localcsi.plugin.server import bind

pytestmark = pytest.mark.unit


class NotReadyIdentity(IdentityServicer):
    def Probe(self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse(ready=BoolValue(value=False))


class UnsetReadyIdentity(IdentityServicer):
    def Probe(self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse()


class StuckIdentity(IdentityServicer):
    def __init__(self, config: PluginConfig) -> None:
        super().__init__(config)
        self.release = threading.Event()

    def Probe(self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext) -> csi_pb2.ProbeResponse:
        self.release.wait(30)
        return csi_pb2.ProbeResponse()


def identity_server(config: PluginConfig, servicer: IdentityServicer | None = None) -> grpc.Server:
    """What plugin.server.build_server makes, with the Identity service alone."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    services.add_identity(servicer or IdentityServicer(config), server)
    bind(server, config)
    server.start()
    return server


@pytest.fixture
def config(tmp_path: Path) -> PluginConfig:
    return PluginConfig(endpoint=f"unix://{tmp_path / 'csi.sock'}")


@pytest.fixture
def health(config: PluginConfig) -> Iterator[HealthServer]:
    server = endpoint_health_server("127.0.0.1:0", config.endpoint, timeout=2.0)
    server.start()
    yield server
    server.stop()


def get(server: HealthServer, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_ready_plugin_is_200_ok(config: PluginConfig, health: HealthServer) -> None:
    grpc_server = identity_server(config)
    try:
        assert get(health, "/healthz") == (200, "ok")
        assert get(health, "/healthz?verbose=1") == (200, "ok")
    finally:
        grpc_server.stop(grace=None)


def test_endpoint_down_is_503_with_the_reason(config: PluginConfig, health: HealthServer) -> None:
    status, body = get(health, "/healthz")
    assert status == 503
    assert body.startswith("Probe failed: UNAVAILABLE: ")


def test_plugin_that_stops_turns_unhealthy(config: PluginConfig, health: HealthServer) -> None:
    grpc_server = identity_server(config)
    assert get(health, "/healthz")[0] == 200
    grpc_server.stop(grace=None).wait()
    assert get(health, "/healthz")[0] == 503


def test_probe_not_ready_is_503(config: PluginConfig, health: HealthServer) -> None:
    grpc_server = identity_server(config, NotReadyIdentity(config))
    try:
        assert get(health, "/healthz") == (503, "Probe answered not ready")
    finally:
        grpc_server.stop(grace=None)


def test_probe_without_ready_field_means_ready(config: PluginConfig, health: HealthServer) -> None:
    grpc_server = identity_server(config, UnsetReadyIdentity(config))
    try:
        assert get(health, "/healthz") == (200, "ok")
    finally:
        grpc_server.stop(grace=None)


def test_stuck_probe_times_out(config: PluginConfig) -> None:
    stuck = StuckIdentity(config)
    grpc_server = identity_server(config, stuck)
    health = endpoint_health_server("127.0.0.1:0", config.endpoint, timeout=0.3)
    health.start()
    try:
        started = time.monotonic()
        status, body = get(health, "/healthz")
        assert time.monotonic() - started < 5
    finally:
        stuck.release.set()
        health.stop()
        grpc_server.stop(grace=None)
    assert (status, body.split(":")[:2]) == (503, ["Probe failed", " DEADLINE_EXCEEDED"])


@pytest.mark.parametrize("path", ["/", "/metrics", "/healthz/extra", "/readyz"])
def test_other_paths_are_404(health: HealthServer, path: str) -> None:
    assert get(health, path)[0] == 404


def test_a_failing_prober_is_503_not_a_crash() -> None:
    def broken() -> str | None:
        raise OSError("no such thing")

    server = HealthServer("127.0.0.1:0", broken)
    server.start()
    try:
        assert get(server, "/healthz") == (503, "probe error: OSError: no such thing")
    finally:
        server.stop()


def test_stop_closes_the_port() -> None:
    server = HealthServer("127.0.0.1:0", lambda: None)
    server.start()
    port = server.port
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_probe_endpoint_over_tcp() -> None:
    config = PluginConfig(endpoint="tcp://127.0.0.1:0")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services.add_identity(IdentityServicer(config), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert probe_endpoint(f"tcp://127.0.0.1:{port}", timeout=5) is None
    finally:
        server.stop(grace=None)


def test_grpc_target_and_address_parsing() -> None:
    assert grpc_target("unix:///csi/csi.sock") == "unix:///csi/csi.sock"
    assert grpc_target("tcp://10.0.0.1:10000") == "10.0.0.1:10000"
    assert split_host_port(":9808") == ("", 9808)
    assert split_host_port("[::1]:9808") == ("::1", 9808)
    for bad in ("9808", "host:", "host:port", "host:70000"):
        with pytest.raises(ValueError, match="expected HOST:PORT"):
            split_host_port(bad)
