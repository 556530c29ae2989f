from __future__ import annotations

import grp
import os
import socket
import stat
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from localcsi.csi import csi_pb2, services
from localcsi.plugin.config import Mode, PluginConfig
from localcsi.plugin.identity import IdentityServicer
from localcsi.plugin.server import bind, socket_path

pytestmark = pytest.mark.unit


@pytest.fixture
def server() -> Iterator[grpc.Server]:
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    yield srv
    srv.stop(grace=None)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_socket_is_owner_only_by_default(server: grpc.Server, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "csi.sock"
    bind(server, PluginConfig(endpoint=f"unix://{path}"))
    server.start()
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert mode_of(path) == 0o600


def test_socket_group_gets_0660_and_the_group(server: grpc.Server, tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "csi.sock"
    bind(server, PluginConfig(endpoint=f"unix://{path}", socket_group=group))
    assert mode_of(path) == 0o660
    assert path.stat().st_gid == os.getgid()


def test_unknown_socket_group_is_refused(server: grpc.Server, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no such group"):
        bind(server, PluginConfig(endpoint=f"unix://{tmp_path / 'csi.sock'}", socket_group="no-such-group-xyz"))


def test_stale_socket_is_replaced(server: grpc.Server, tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    bind(server, PluginConfig(endpoint=f"unix://{path}"))
    server.start()
    with grpc.insecure_channel(f"unix:{path}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)


def test_regular_file_at_socket_path_is_never_removed(server: grpc.Server, tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    path.write_text("precious")
    with pytest.raises(RuntimeError, match="not a socket"):
        bind(server, PluginConfig(endpoint=f"unix://{path}"))
    assert path.read_text() == "precious"


def test_socket_path_parses_only_unix_endpoints() -> None:
    assert socket_path("unix:///run/csi.sock") == Path("/run/csi.sock")
    assert socket_path("tcp://127.0.0.1:1234") is None


@pytest.mark.parametrize(
    ("mode", "controller_advertised"), [(Mode.STANDALONE, True), (Mode.CONTROLLER, True), (Mode.NODE, False)]
)
def test_identity_over_a_real_socket(tmp_path: Path, mode: Mode, controller_advertised: bool) -> None:
    path = tmp_path / "csi.sock"
    config = PluginConfig(mode=mode, endpoint=f"unix://{path}")
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services.add_identity(IdentityServicer(config), srv)
    bind(srv, config)
    srv.start()
    try:
        with grpc.insecure_channel(f"unix:{path}") as channel:
            identity = services.identity_stub(channel)
            info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
            caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), timeout=10)
            probe = identity.Probe(csi_pb2.ProbeRequest(), timeout=10)
    finally:
        srv.stop(grace=None)
    assert info.name == "localcsi.io"
    assert info.vendor_version
    kinds = {c.service.type for c in caps.capabilities if c.HasField("service")}
    service = csi_pb2.PluginCapability.Service
    assert (service.CONTROLLER_SERVICE in kinds) is controller_advertised
    assert service.VOLUME_ACCESSIBILITY_CONSTRAINTS in kinds
    expansion = [c.volume_expansion.type for c in caps.capabilities if c.HasField("volume_expansion")]
    assert expansion == [csi_pb2.PluginCapability.VolumeExpansion.ONLINE]
    assert probe.ready.value is True
