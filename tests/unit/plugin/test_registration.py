"""The kubelet's side of plugin registration, played by a real gRPC client on the real socket."""

from __future__ import annotations

import logging
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from localcsi.csi import pluginregistration_pb2, pluginregistration_pb2_grpc
from localcsi.plugin.config import Mode, PluginConfig
from localcsi.plugin.registration import RegistrationServer, registration_socket_path

pytestmark = pytest.mark.unit

KUBELET_PATH = "/var/lib/kubelet/plugins/localcsi.io/csi.sock"


def node_config(registration_dir: Path, mode: Mode = Mode.NODE) -> PluginConfig:
    return PluginConfig(
        mode=mode,
        endpoint="unix:///csi/csi.sock",  # the path inside the container: never what the kubelet is told
        registration_dir=str(registration_dir),
        kubelet_registration_path=KUBELET_PATH,
    )


class Rejections:
    """Stands in for the process exit: records what the kubelet said."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, error: str) -> None:
        self.errors.append(error)


@pytest.fixture
def rejections() -> Rejections:
    return Rejections()


@pytest.fixture
def registry_dir() -> Iterator[Path]:
    """A short directory for the socket: pytest's tmp_path under xdist (/tmp/pytest-of-root/pytest-NNN/
    popen-gwN/<test name>0/) plus plugins_registry/localcsi.io-reg.sock went past the 107 bytes a unix
    socket path may have, and the server refused to start."""
    path = Path(tempfile.mkdtemp(prefix="lcsi-reg-")) / "plugins_registry"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def registration(registry_dir: Path, rejections: Rejections) -> Iterator[RegistrationServer]:
    server = RegistrationServer(node_config(registry_dir), rejections)
    server.start()
    yield server
    server.stop(grace=None)


def kubelet(path: Path) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(f"unix:{path}")
    return channel, pluginregistration_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call]


def test_socket_is_named_after_the_driver_and_private(registration: RegistrationServer, registry_dir: Path) -> None:
    path = registry_dir / "localcsi.io-reg.sock"
    assert registration.socket_path == path == registration_socket_path(str(path.parent), "localcsi.io")
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("mode", [Mode.NODE, Mode.STANDALONE])
def test_get_info_tells_the_kubelet_path_not_ours(tmp_path: Path, rejections: Rejections, mode: Mode) -> None:
    server = RegistrationServer(node_config(tmp_path, mode), rejections)
    server.start()
    channel, stub = kubelet(server.socket_path)
    try:
        info = stub.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=10)
    finally:
        channel.close()
        server.stop(grace=None)
    assert info.type == "CSIPlugin"
    assert info.name == "localcsi.io"
    assert info.endpoint == KUBELET_PATH
    assert list(info.supported_versions) == ["1.0.0"]


def test_accepted_registration_is_only_logged(
    registration: RegistrationServer, rejections: Rejections, caplog: pytest.LogCaptureFixture
) -> None:
    channel, stub = kubelet(registration.socket_path)
    with channel, caplog.at_level(logging.INFO, logger="localcsi.plugin.registration"):
        stub.NotifyRegistrationStatus(pluginregistration_pb2.RegistrationStatus(plugin_registered=True), timeout=10)
    assert rejections.errors == []
    assert "registered with the kubelet as localcsi.io" in caplog.messages


def test_rejected_registration_logs_an_error_and_exits(
    registration: RegistrationServer, rejections: Rejections, caplog: pytest.LogCaptureFixture
) -> None:
    status = pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error="version 9.9 unsupported")
    channel, stub = kubelet(registration.socket_path)
    with channel:
        response = stub.NotifyRegistrationStatus(status, timeout=10)
    assert response == pluginregistration_pb2.RegistrationStatusResponse()
    assert rejections.errors == ["version 9.9 unsupported"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["the kubelet rejected the registration: version 9.9 unsupported"]


def test_rejection_without_a_reason_still_exits(registration: RegistrationServer, rejections: Rejections) -> None:
    channel, stub = kubelet(registration.socket_path)
    with channel:
        stub.NotifyRegistrationStatus(pluginregistration_pb2.RegistrationStatus(plugin_registered=False), timeout=10)
    assert rejections.errors == ["(the kubelet gave no reason)"]


def test_stop_removes_the_socket(tmp_path: Path, rejections: Rejections) -> None:
    server = RegistrationServer(node_config(tmp_path), rejections)
    server.start()
    assert server.socket_path.exists()
    server.stop(grace=None)
    assert not server.socket_path.exists()
    server.stop(grace=None)  # a second stop is harmless


def test_stale_socket_is_replaced(tmp_path: Path, rejections: Rejections) -> None:
    path = registration_socket_path(str(tmp_path), "localcsi.io")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    server = RegistrationServer(node_config(tmp_path), rejections)
    server.start()
    channel, stub = kubelet(path)
    try:
        assert stub.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=10).name == "localcsi.io"
    finally:
        channel.close()
        server.stop(grace=None)


def test_a_file_in_the_way_is_never_removed(tmp_path: Path, rejections: Rejections) -> None:
    path = registration_socket_path(str(tmp_path), "localcsi.io")
    path.write_text("precious")
    with pytest.raises(RuntimeError, match="not a socket"):
        RegistrationServer(node_config(tmp_path), rejections).start()
    assert path.read_text() == "precious"


def test_too_long_a_socket_path_is_refused(tmp_path: Path, rejections: Rejections) -> None:
    deep = tmp_path / ("d" * 100)
    with pytest.raises(RuntimeError, match="longer than the 107 bytes"):
        RegistrationServer(node_config(deep), rejections).start()
    assert not deep.exists()


def test_config_without_registration_dir_is_refused(rejections: Rejections) -> None:
    with pytest.raises(ValueError, match="registration_dir"):
        RegistrationServer(PluginConfig(mode=Mode.NODE), rejections)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": Mode.NODE, "registration_dir": "/r"}, "needs kubelet_registration_path"),
        ({"mode": Mode.CONTROLLER, "registration_dir": "/r", "kubelet_registration_path": "/k"}, "no Node service"),
    ],
)
def test_plugin_config_refuses_an_incomplete_registration(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PluginConfig(**changes)
