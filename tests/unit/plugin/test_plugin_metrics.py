"""`localcsi plugin --metrics-address` as a real process: /metrics counts its CSI calls, /healthz beside it."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import pytest
from plugin_process import running, stop, wait_for_socket

from localcsi.csi import csi_pb2, services
from localcsi.testing.vm import free_port

pytestmark = pytest.mark.unit


def fetch(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("same_address", [False, True], ids=["metrics-and-health", "one-address"])
def test_metrics_address_serves_rpc_metrics_and_healthz(tmp_path: Path, same_address: bool) -> None:
    sock = tmp_path / "csi.sock"
    metrics_port = free_port()
    health_port = metrics_port if same_address else free_port()
    args = ["--mode", "node", "--endpoint", f"unix://{sock}", "--node-id", "unit-node"]
    args += ["--metrics-address", f"127.0.0.1:{metrics_port}", "--health-address", f"127.0.0.1:{health_port}"]
    with running(args) as proc:
        wait_for_socket(sock, proc)
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            for _ in range(2):
                services.node_stub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
        status, body = fetch(metrics_port, "/metrics")
        assert status == 200
        assert 'localcsi_csi_requests_total{code="OK",method="NodeGetInfo",service="Node"} 2.0' in body
        assert 'localcsi_csi_request_duration_seconds_count{method="NodeGetInfo",service="Node"} 2.0' in body
        assert "process_resident_memory_bytes" in body  # the default registry's process collector
        assert fetch(metrics_port, "/healthz") == (200, "ok")
        assert fetch(health_port, "/healthz") == (200, "ok")
        stderr = stop(proc)
    assert proc.returncode == 0, stderr
    served = "serving /healthz and /metrics on port"
    assert stderr.count(served) == 1 and stderr.count("serving /healthz on port") == (0 if same_address else 1)
