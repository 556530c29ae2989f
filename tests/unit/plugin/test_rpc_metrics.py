"""The gRPC interceptor: each CSI call timed and counted by its real status code, over a real server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from localcsi.core.errors import NotFound
from localcsi.csi import csi_pb2, csi_pb2_grpc, services
from localcsi.plugin.config import PluginConfig
from localcsi.plugin.errors import translate_errors
from localcsi.plugin.identity import IdentityServicer
from localcsi.plugin.rpc_metrics import RpcMetrics, RpcMetricsInterceptor, split_method

pytestmark = pytest.mark.unit


class Node(csi_pb2_grpc.NodeServicer):
    @translate_errors
    def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        raise NotFound(f"volume {request.volume_id} is not published")

    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        raise RuntimeError("a bug outside translate_errors")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[grpc.Channel, CollectorRegistry]]:
    registry = CollectorRegistry()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[RpcMetricsInterceptor(RpcMetrics(registry))]
    )
    services.add_identity(IdentityServicer(PluginConfig()), server)
    services.add_node(Node(), server)
    server.add_insecure_port(f"unix:{tmp_path / 'csi.sock'}")
    server.start()
    with grpc.insecure_channel(f"unix:{tmp_path / 'csi.sock'}") as channel:
        yield channel, registry
    server.stop(grace=None)


def test_split_method() -> None:
    assert split_method("/csi.v1.Controller/CreateVolume") == ("Controller", "CreateVolume")


def test_calls_are_counted_by_code_and_timed(served: tuple[grpc.Channel, CollectorRegistry]) -> None:
    channel, registry = served
    identity, node = services.identity_stub(channel), services.node_stub(channel)
    for _ in range(3):
        identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
    with pytest.raises(grpc.RpcError) as not_found:
        node.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(volume_id="v", volume_path="/p"), timeout=10)
    with pytest.raises(grpc.RpcError) as unknown:
        node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
    with pytest.raises(grpc.RpcError) as unimplemented:
        node.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(), timeout=10)  # the base servicer's answer
    assert not_found.value.code() is grpc.StatusCode.NOT_FOUND
    assert unknown.value.code() is grpc.StatusCode.UNKNOWN
    assert unimplemented.value.code() is grpc.StatusCode.UNIMPLEMENTED

    def count(service: str, method: str, code: str) -> float | None:
        return registry.get_sample_value(
            "localcsi_csi_requests_total", {"service": service, "method": method, "code": code}
        )

    assert count("Identity", "GetPluginInfo", "OK") == 3
    assert count("Node", "NodeGetVolumeStats", "NOT_FOUND") == 1
    assert count("Node", "NodeGetInfo", "UNKNOWN") == 1
    assert count("Node", "NodeStageVolume", "UNIMPLEMENTED") == 1
    assert count("Node", "NodeGetVolumeStats", "OK") is None
    labels = {"service": "Identity", "method": "GetPluginInfo"}
    assert registry.get_sample_value("localcsi_csi_request_duration_seconds_count", labels) == 3
    assert (registry.get_sample_value("localcsi_csi_request_duration_seconds_sum", labels) or 0) > 0
