"""`localcsi plugin --metrics-address` as a real process: /metrics counts its CSI calls, /healthz beside it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from localcsi.csi import csi_pb2, services

pytestmark = pytest.mark.unit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read().decode()


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, f"plugin exited early: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"no socket at {path}"
        time.sleep(0.05)


@pytest.mark.parametrize("same_address", [False, True], ids=["metrics-and-health", "one-address"])
def test_metrics_address_serves_rpc_metrics_and_healthz(tmp_path: Path, same_address: bool) -> None:
    sock = tmp_path / "csi.sock"
    metrics_port = free_port()
    health_port = metrics_port if same_address else free_port()
    argv = [sys.executable, "-m", "localcsi", "plugin", "--mode", "node", "--endpoint", f"unix://{sock}"]
    argv += ["--node-id", "unit-node", "--metrics-address", f"127.0.0.1:{metrics_port}"]
    argv += ["--health-address", f"127.0.0.1:{health_port}"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(sock, proc)
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
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    served = "serving /healthz and /metrics on port"
    assert stderr.count(served) == 1 and stderr.count("serving /healthz on port") == (0 if same_address else 1)
