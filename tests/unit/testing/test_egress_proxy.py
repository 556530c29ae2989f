from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localcsi.testing.egress_proxy import EgressProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy() -> Iterator[EgressProxy]:
    proxy = EgressProxy().start()
    yield proxy
    proxy.stop()


def _connect(proxy: EgressProxy, target: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def test_a_routed_target_is_tunnelled_to_its_loopback_port(proxy: EgressProxy, echo_port: int) -> None:
    proxy.route("10.0.2.15:10250", echo_port)
    sock, head = _connect(proxy, "10.0.2.15:10250")
    with sock:
        assert head.startswith(b"HTTP/1.1 200")
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"


def test_an_unknown_target_is_refused(proxy: EgressProxy, echo_port: int) -> None:
    proxy.route("10.0.2.15:10250", echo_port)
    sock, head = _connect(proxy, "10.0.2.16:10250")
    with sock:
        assert head.startswith(b"HTTP/1.1 403")


def test_only_connect_is_served(proxy: EgressProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 405")


def test_config_sends_cluster_traffic_through_the_proxy(proxy: EgressProxy, tmp_path: Path) -> None:
    config = yaml.safe_load(proxy.write_config(tmp_path / "egress.yaml").read_text())
    assert config["kind"] == "EgressSelectorConfiguration"
    [selection] = config["egressSelections"]
    assert selection["name"] == "cluster"
    assert selection["connection"]["proxyProtocol"] == "HTTPConnect"
    assert selection["connection"]["transport"]["tcp"]["url"] == f"http://127.0.0.1:{proxy.port}"
