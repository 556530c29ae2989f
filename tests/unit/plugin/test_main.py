"""`localcsi plugin` as a real process: serves on a private socket, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from localcsi.csi import csi_pb2, services

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
