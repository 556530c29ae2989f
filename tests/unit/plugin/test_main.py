"""`localcsi plugin` as a real process: serves on a private socket, registers with the kubelet, stops cleanly."""

from __future__ import annotations

import json
import signal
import stat
import urllib.request
from pathlib import Path

import grpc
import pytest
from plugin_process import running, stop, wait_for_socket

from localcsi.csi import csi_pb2, pluginregistration_pb2, pluginregistration_pb2_grpc, services
from localcsi.testing.vm import free_port

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_plugin_serves_and_stops_gracefully(tmp_path: Path, signum: signal.Signals) -> None:
    sock = tmp_path / "csi.sock"
    with running(["--mode", "node", "--endpoint", f"unix://{sock}", "--node-id", "unit-node"]) as proc:
        wait_for_socket(sock, proc)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            info = services.identity_stub(channel).GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
            node = services.node_stub(channel).NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
        assert info.name == "localcsi.io"
        assert node.node_id == "unit-node"
        stderr = stop(proc, signum)
    assert proc.returncode == 0, stderr
    messages = [json.loads(line)["msg"] for line in stderr.splitlines() if line.startswith("{")]
    assert f"received {signum.name}, shutting down gracefully" in messages
    assert messages[-1] == "stopped"


def registering_args(tmp_path: Path, health_port: int) -> tuple[list[str], Path]:
    """A node plugin that registers through tmp_path/registry and serves /healthz; and its socket."""
    registry = tmp_path / "registry"
    args = ["--mode", "node", "--endpoint", f"unix://{tmp_path / 'csi.sock'}", "--node-id", "unit-node"]
    args += ["--registration-dir", str(registry)]
    args += ["--kubelet-registration-path", "/var/lib/kubelet/plugins/localcsi.io/csi.sock"]
    args += ["--health-address", f"127.0.0.1:{health_port}"]
    return args, registry / "localcsi.io-reg.sock"


def log_records(stderr: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_node_plugin_registers_serves_health_and_cleans_up(tmp_path: Path) -> None:
    health_port = free_port()
    args, registration = registering_args(tmp_path, health_port)
    with running(args) as proc:
        wait_for_socket(registration, proc)
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
        stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert not registration.exists(), "the kubelet must see the registration socket go"
    assert "registered with the kubelet as localcsi.io" in [r["msg"] for r in log_records(stderr)]
    assert log_records(stderr)[-1]["msg"] == "stopped"


def test_rejected_registration_exits_non_zero(tmp_path: Path) -> None:
    args, registration = registering_args(tmp_path, free_port())
    with running(args) as proc:
        wait_for_socket(registration, proc)
        with grpc.insecure_channel(f"unix:{registration}") as channel:
            kubelet = pluginregistration_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]
            rejected = pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error="no such version")
            kubelet.NotifyRegistrationStatus(rejected, timeout=10)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    records = log_records(stderr)
    errors = [r["msg"] for r in records if r["level"] == "error"]
    assert errors == ["the kubelet rejected the registration: no such version"]
    assert records[-1]["msg"] == "stopped"
    assert not registration.exists()
