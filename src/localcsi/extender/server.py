"""The extender's HTTP server: POST /filter and /prioritize, GET /healthz and /metrics.

A malformed request is answered 400 with the reason as plain text (kube-scheduler logs the status;
the text is for whoever calls by hand). Until the informers have synced, /filter and /prioritize
answer 503: deciding from an empty cache would promise space that is taken.

Requests are parsed here, not by ``http.server``'s header parser (the email package's, several times
the cost of the extender's own work on a 100-node request), and answers are written as raw bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from localcsi.background_http import BackgroundHTTPServer
from localcsi.extender.metrics import VERBS, Metrics
from localcsi.extender.protocol import ProtocolError, RequestCache, encode_filter_result, encode_ranks, parse_args
from localcsi.extender.service import Extender
from localcsi.logs import fields
from localcsi.memory import release_after

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # a NodeList of 5000 full Node objects stays well below
MAX_HEADER_LINE = 8192
MAX_HEADERS = 100


class ExtenderServer(BackgroundHTTPServer):
    thread_name = "extender-http"

    def __init__(
        self,
        address: tuple[str, int],
        extender: Extender,
        ready: Callable[[], bool] = lambda: True,
        metrics: Metrics | None = None,
    ) -> None:
        self.extender = extender
        self.ready = ready
        self.metrics = metrics or Metrics(extender)
        self.node_names = RequestCache()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: ExtenderServer
    raw_requestline: bytes  # set by handle_one_request before parse_request
    protocol_version = "HTTP/1.1"  # kube-scheduler's Go client keeps connections alive
    # Headers and body are buffered and sent together when the request is done: one write, not two
    # (each write gives up the GIL, and takes it back only when the informer threads let go of it).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True  # with Nagle on, a reply larger than the buffer waits for an ACK
    _body_bytes = 0  # of the request being served (a kept-alive connection serves many)

    def parse_request(self) -> bool:
        """The request line and headers, into ``command``, ``path``, ``request_version``, ``headers``
        and ``close_connection`` as ``BaseHTTPRequestHandler`` sets them. Errors answer 400 or 431."""
        self.command = ""  # send_error reads it
        self.requestline = line = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        parts = line.split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.1"  # so that send_error answers with a status line
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, f"bad request line {line[:100]!r}")
            return False
        self.command, self.path, self.request_version = parts
        headers: dict[str, str] = {}
        lines = 0
        while (raw := self.rfile.readline(MAX_HEADER_LINE + 1)) not in (b"\r\n", b"\n", b""):
            name, colon, value = raw.decode("latin-1").partition(":")
            lines += 1
            if len(raw) > MAX_HEADER_LINE or lines > MAX_HEADERS:
                self.close_connection = True
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header line too long or too many")
                return False
            if not colon or not name or name != name.strip():
                self.close_connection = True
                self.send_error(HTTPStatus.BAD_REQUEST, f"bad header line {raw[:100]!r}")
                return False
            key, value = name.lower(), value.strip()
            if key == "content-length" and headers.get(key, value) != value:  # which body would be meant?
                self.close_connection = True
                self.send_error(HTTPStatus.BAD_REQUEST, "Content-Length given twice, differently")
                return False
            headers[key] = value
        self.headers = _Headers(headers)  # type: ignore[assignment]  # only .get is used
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if self.command not in ("GET", "POST"):
            # 405, not http.server's 501, and the body read first: left unread, it would be taken for
            # the connection's next request. The answer is flushed here: only served requests are.
            self._discard_body()
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, b"GET /healthz or /metrics, POST /filter or /prioritize\n")
            self.wfile.flush()
            return False
        if headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        return True

    def do_GET(self) -> None:
        self._discard_body()  # a GET has none, but one sent must not be read as the next request
        if self.path == "/healthz":
            if self.server.ready():
                self._reply(HTTPStatus.OK, b"ok\n", "text/plain")
            else:
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b"informer caches not synced yet\n", "text/plain")
        elif self.path == "/metrics":
            self._reply(HTTPStatus.OK, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"GET /healthz or /metrics\n", "text/plain")

    def do_POST(self) -> None:
        verb = self.path.strip("/")
        if verb not in VERBS:
            self._discard_body()
            self._reply(HTTPStatus.NOT_FOUND, b"POST /filter or /prioritize\n", "text/plain")
            return
        started = time.perf_counter()
        self._body_bytes = 0
        status = self._serve_verb(verb)
        self.server.metrics.served(verb, status, time.perf_counter() - started)
        release_after(self._body_bytes)

    def _serve_verb(self, verb: str) -> HTTPStatus:
        try:
            args = parse_args(self._read_body(), self.server.node_names)
        except ProtocolError as error:
            log.warning("bad %s request: %s", verb, error, extra=fields(verb=verb, client=self.client_address[0]))
            return self._reply(HTTPStatus.BAD_REQUEST, f"{error}\n".encode(), "text/plain")
        if not self.server.ready():
            return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b"informer caches not synced yet\n", "text/plain")
        extender = self.server.extender
        try:
            if verb == "filter":
                outcome = extender.filter(args.pod, args.node_names)
                self.server.metrics.filtered(len(outcome.passed), len(outcome.failed))
                body = encode_filter_result(args, outcome.passed, outcome.failed, names=self.server.node_names)
            else:
                body = encode_ranks(extender.prioritize(args.pod, args.node_names).ranks, args.plain_names)
        except Exception as error:
            log.exception("%s failed", verb, extra=fields(verb=verb))
            return self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"{verb} failed: {error}\n".encode(errors="backslashreplace"),
                "text/plain",
            )
        return self._reply(HTTPStatus.OK, body, "application/json")

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise ProtocolError("Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise ProtocolError(f"Content-Length {length_header!r} is not a number") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise ProtocolError(f"body of {length} bytes is outside 0..{MAX_BODY_BYTES}")
        body = self.rfile.read(length)
        self._body_bytes = len(body)
        if len(body) < length:  # the client closed its side: never judge part of a request
            self.close_connection = True
            raise ProtocolError(f"body ended after {len(body)} of {length} bytes")
        return body

    def _discard_body(self) -> None:
        """Read a body nobody wants, in pieces; one that cannot be read closes the connection."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES or self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            return
        while length > 0:
            piece = self.rfile.read(min(length, 1 << 16))
            if not piece:
                self.close_connection = True
                return
            length -= len(piece)

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain") -> HTTPStatus:
        closing = "Connection: close\r\n" if self.close_connection else ""
        allow = "Allow: GET, POST\r\n" if status is HTTPStatus.METHOD_NOT_ALLOWED else ""
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{allow}{closing}\r\n"
        )
        self.wfile.write(head.encode("latin-1") + (b"" if self.command == "HEAD" else body))
        return status

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class _Headers:
    """Header values by lower-cased name: the one thing the handler asks of ``headers``."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)
