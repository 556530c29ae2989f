"""A scripted HTTP(S) server on loopback for testing API clients against real sockets: every request is
recorded and answered by a function of the test (a JSON body, a status, or a chunked stream)."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent: still percent-encoded
    query_string: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_common_name: str | None = None  # of the client certificate, over TLS

    @property
    def query(self) -> dict[str, str]:
        """Decoded query parameters (the last value of a repeated one)."""
        return {key: values[-1] for key, values in parse_qs(self.query_string, keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-encoded, unless bytes
    chunks: Iterable[bytes] | None = None  # sent with chunked transfer encoding, each flushed as it comes
    reason: str | None = None


def status_reply(code: int, reason: str, message: str) -> Reply:
    """An error answered as the apiserver does: a metav1.Status body."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message}
    return Reply(code, {**status, "code": code})


Handler = Callable[[Request], Reply]


class StubApiserver:
    """``with StubApiserver(handle) as server: ... server.url ...``; ``tls`` makes it HTTPS."""

    def __init__(self, handle: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> StubApiserver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler_class(server: StubApiserver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and chunked replies

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            common_name = None
            if isinstance(self.connection, ssl.SSLSocket):
                peer = self.connection.getpeercert() or {}
                subject = cast(tuple[tuple[tuple[str, str], ...], ...], peer.get("subject", ()))
                common_name = dict(pair for rdn in subject for pair in rdn).get("commonName")
            request = Request(
                method=self.command,
                path=url.path,
                query_string=url.query,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                client_common_name=common_name,
            )
            server.requests.append(request)
            reply = server.handle(request)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):  # the client gave up
                self._reply(reply)

        def _reply(self, reply: Reply) -> None:
            self.send_response(reply.status, reply.reason)
            self.send_header("Content-Type", "application/json")
            if reply.chunks is not None:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in filter(None, reply.chunks):  # an empty chunk would end the body
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                return
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
