"""`localcsi plugin` as a real process: serves on a private socket, registers with the kubelet, stops cleanly."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from localcsi.csi import csi_pb2, pluginregistration_pb2, pluginregistration_pb2_grpc, services

pytestmark = pytest.mark.unit


def wait_for_socket(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        assert proc.poll() is None, f"plugin exited early: {proc.communicate()[1]}"
        time.sleep(0.05)
    raise AssertionError(f"no socket at {path} after {timeout}s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_plugin_serves_and_stops_gracefully(tmp_path: Path, signum: signal.Signals) -> None:
    sock = tmp_path / "csi.sock"
    argv = [sys.executable, "-m", "localcsi", "plugin", "--mode", "node", "--endpoint", f"unix://{sock}"]
    proc = subprocess.Popen([*argv, "--node-id", "unit-node"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(sock, proc)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            info = services.identity_stub(channel).GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
            node = services.node_stub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
        assert info.name == "localcsi.io"
        assert node.node_id == "unit-node"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    messages = [json.loads(line)["msg"] for line in stderr.splitlines() if line.startswith("{")]
    assert f"received {signum.name}, shutting down gracefully" in messages
    assert messages[-1] == "stopped"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registering_plugin(tmp_path: Path, health_port: int) -> tuple[subprocess.Popen[str], Path]:
    """A node plugin that registers through tmp_path/registry and serves /healthz."""
    sock, registry = tmp_path / "csi.sock", tmp_path / "registry"
    argv = [sys.executable, "-m", "localcsi", "plugin", "--mode", "node", "--endpoint", f"unix://{sock}"]
    argv += ["--node-id", "unit-node", "--registration-dir", str(registry)]
    argv += ["--kubelet-registration-path", "/var/lib/kubelet/plugins/localcsi.io/csi.sock"]
    argv += ["--health-address", f"127.0.0.1:{health_port}"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    registration = registry / "localcsi.io-reg.sock"
    wait_for_socket(registration, proc)
    return proc, registration


def log_records(stderr: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_node_plugin_registers_serves_health_and_cleans_up(tmp_path: Path) -> None:
    health_port = free_port()
    proc, registration = start_registering_plugin(tmp_path, health_port)
    try:
        assert stat.S_IMODE(registration.stat().st_mode) == 0o600
        with grpc.insecure_channel(f"unix:{registration}") as channel:
            kubelet = pluginregistration_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            info = kubelet.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=10)
            accepted = pluginregistration_pb2.RegistrationStatus(plugin_registered=True)
            kubelet.NotifyRegistrationStatus(accepted, timeout=10)
        assert (info.type, info.name) == ("CSIPlugin", "localcsi.io")
        assert info.endpoint == "/var/lib/kubelet/plugins/localcsi.io/csi.sock"
        url = f"http://127.0.0.1:{health_port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert (response.status, response.read()) == (200, b"ok")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert not registration.exists(), "the kubelet must see the registration socket go"
    assert "registered with the kubelet as localcsi.io" in [r["msg"] for r in log_records(stderr)]
    assert log_records(stderr)[-1]["msg"] == "stopped"


def test_rejected_registration_exits_non_zero(tmp_path: Path) -> None:
    proc, registration = start_registering_plugin(tmp_path, free_port())
    try:
        with grpc.insecure_channel(f"unix:{registration}") as channel:
            kubelet = pluginregistration_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            rejected = pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error="no such version")
            kubelet.NotifyRegistrationStatus(rejected, timeout=10)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    records = log_records(stderr)
    errors = [r["msg"] for r in records if r["level"] == "error"]
    assert errors == ["the kubelet rejected the registration: no such version"]
    assert records[-1]["msg"] == "stopped"
    assert not registration.exists()
