"""kube-apiserver's way to kubelets (logs, exec, port-forward, the node proxy) when the node is a VM
behind qemu's user network.

The apiserver dials a node at its InternalIP (10.0.2.15:10250), which only exists inside the VM. With
an EgressSelectorConfiguration, its "cluster" traffic goes through an HTTP CONNECT proxy instead, as
it would through konnectivity in a real cluster. This proxy knows one route per node, the loopback
port qemu forwards to that kubelet, and refuses every other target: it never dials anything but
127.0.0.1. It speaks TLS and requires a client certificate of the cluster CA (kube-apiserver's HTTP
CONNECT over plain TCP dereferences a TLS configuration it does not have: it crashes at start).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from pathlib import Path

import yaml

MAX_HEAD_BYTES = 8192
PIPE_CHUNK = 65536


class _Handler(socketserver.StreamRequestHandler):
    server: EgressProxy

    def setup(self) -> None:
        assert isinstance(self.request, ssl.SSLSocket)
        self.request.do_handshake()  # here, in the handler's thread, not in the accept loop
        super().setup()

    def handle(self) -> None:
        request_line = self.rfile.readline(MAX_HEAD_BYTES).decode("latin-1").split()
        while self.rfile.readline(MAX_HEAD_BYTES) not in (b"\r\n", b"\n", b""):
            pass  # headers: nothing in them changes the route
        if len(request_line) != 3 or request_line[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        port = self.server.routes.get(request_line[1])
        if port is None:
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            return
        upstream.settimeout(None)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            pump = threading.Thread(target=_pipe, args=(upstream, self.connection), daemon=True)
            pump.start()
            _pipe(self.connection, upstream)
            pump.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(PIPE_CHUNK):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class EgressProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, server_cert: Path, server_key: Path, ca_cert: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ca_cert = ca_cert
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(server_cert, server_key)
        self._tls.load_verify_locations(ca_cert)
        self._tls.verify_mode = ssl.CERT_REQUIRED
        self.routes: dict[str, int] = {}
        self._thread = threading.Thread(target=self.serve_forever, name="egress-proxy", daemon=True)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-handshake or mid-stream is not the proxy's failure

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port

    def route(self, target: str, loopback_port: int) -> None:
        """CONNECT `target` (host:port, as the apiserver names it) reaches 127.0.0.1:`loopback_port`."""
        self.routes[target] = loopback_port

    def start(self) -> EgressProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def write_config(self, path: Path, client_cert: Path, client_key: Path) -> Path:
        """The apiserver's --egress-selector-config-file: cluster traffic through this proxy, with the
        apiserver's client certificate."""
        config = {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": [
                {
                    "name": "cluster",
                    "connection": {
                        "proxyProtocol": "HTTPConnect",
                        "transport": {
                            "tcp": {
                                "url": f"https://127.0.0.1:{self.port}",
                                "tlsConfig": {
                                    "caBundle": str(self.ca_cert),
                                    "clientCert": str(client_cert),
                                    "clientKey": str(client_key),
                                },
                            }
                        },
                    },
                }
            ],
        }
        path.write_text(yaml.safe_dump(config))
        return path
