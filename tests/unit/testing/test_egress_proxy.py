from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localcsi.testing.certs import ClientCert, ClusterCerts, make_certs, make_client_cert
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


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClusterCerts:
    return make_certs(tmp_path_factory.mktemp("pki"), ("127.0.0.1",))


@pytest.fixture(scope="module")
def apiserver_identity(certs: ClusterCerts) -> ClientCert:
    return make_client_cert(certs, "apiserver-kubelet-client", "kube-apiserver", "system:masters")


@pytest.fixture
def proxy(certs: ClusterCerts) -> Iterator[EgressProxy]:
    proxy = EgressProxy(certs.server_cert, certs.server_key, certs.ca_cert).start()
    yield proxy
    proxy.stop()


def _tls_client(certs: ClusterCerts, identity: ClientCert | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    if identity is not None:
        context.load_cert_chain(identity.cert, identity.key)
    return context


def _open(proxy: EgressProxy, certs: ClusterCerts, identity: ClientCert | None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    return _tls_client(certs, identity).wrap_socket(raw, server_hostname="127.0.0.1")


def _connect(proxy: EgressProxy, certs: ClusterCerts, identity: ClientCert, target: str) -> tuple[socket.socket, bytes]:
    sock = _open(proxy, certs, identity)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def test_a_routed_target_is_tunnelled_to_its_loopback_port(
    proxy: EgressProxy, certs: ClusterCerts, apiserver_identity: ClientCert, echo_port: int
) -> None:
    proxy.route("10.0.2.15:10250", echo_port)
    sock, head = _connect(proxy, certs, apiserver_identity, "10.0.2.15:10250")
    with sock:
        assert head.startswith(b"HTTP/1.1 200")
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"


def test_an_unknown_target_is_refused(
    proxy: EgressProxy, certs: ClusterCerts, apiserver_identity: ClientCert, echo_port: int
) -> None:
    proxy.route("10.0.2.15:10250", echo_port)
    sock, head = _connect(proxy, certs, apiserver_identity, "10.0.2.16:10250")
    with sock:
        assert head.startswith(b"HTTP/1.1 403")


def test_only_connect_is_served(proxy: EgressProxy, certs: ClusterCerts, apiserver_identity: ClientCert) -> None:
    with _open(proxy, certs, apiserver_identity) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 405")


def test_a_client_without_a_certificate_of_the_ca_gets_nothing(
    proxy: EgressProxy, certs: ClusterCerts, echo_port: int
) -> None:
    proxy.route("10.0.2.15:10250", echo_port)
    with pytest.raises((ssl.SSLError, ConnectionError)):  # TLS 1.3 reports it at the first read
        sock = _open(proxy, certs, None)
        sock.sendall(b"CONNECT 10.0.2.15:10250 HTTP/1.1\r\n\r\n")
        assert sock.recv(64) == b""
        raise ConnectionError("closed without an answer")


def test_config_sends_cluster_traffic_through_the_proxy(
    proxy: EgressProxy, apiserver_identity: ClientCert, tmp_path: Path
) -> None:
    path = proxy.write_config(tmp_path / "egress.yaml", apiserver_identity.cert, apiserver_identity.key)
    config = yaml.safe_load(path.read_text())
    assert config["kind"] == "EgressSelectorConfiguration"
    [selection] = config["egressSelections"]
    assert selection["name"] == "cluster"
    assert selection["connection"]["proxyProtocol"] == "HTTPConnect"
    tcp = selection["connection"]["transport"]["tcp"]
    assert tcp["url"] == f"https://127.0.0.1:{proxy.port}"
    assert tcp["tlsConfig"]["clientCert"] == str(apiserver_identity.cert)
