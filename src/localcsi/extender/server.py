"""The extender's HTTP server: POST /filter and /prioritize, GET /healthz and /metrics.

A malformed request is answered 400 with the reason as plain text (kube-scheduler logs the status;
the text is for whoever calls by hand). Until the informers have synced, /filter and /prioritize
answer 503: deciding from an empty cache would promise space that is taken.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from localcsi.extender.protocol import ProtocolError, encode_filter_result, encode_ranks, parse_args
from localcsi.extender.service import Extender
from localcsi.logs import fields

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # a NodeList of 5000 full Node objects stays well below
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self, extender: Extender, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "localcsi_extender_requests",
            "Extender HTTP requests by verb and status code.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "localcsi_extender_request_seconds",
            "Time to answer filter and prioritize.",
            ["verb"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.filtered_nodes = Counter(
            "localcsi_extender_filtered_nodes",
            "Nodes judged by filter, by result.",
            ["result"],
            registry=self.registry,
        )
        reserved = Gauge("localcsi_extender_reserved_pods", "Pods holding reservations.", registry=self.registry)
        reserved.set_function(lambda: extender.ready_summary()["reserved_pods"])
        holds = Gauge("localcsi_extender_reserved_pod_nodes", "(pod, node) reservations held.", registry=self.registry)
        holds.set_function(lambda: extender.ready_summary()["reserved_pod_nodes"])
        nodes = Gauge("localcsi_extender_nodes", "Nodes with a storage report.", registry=self.registry)
        nodes.set_function(lambda: extender.ready_summary()["nodes"])


class ExtenderServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

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
        self._thread: threading.Thread | None = None
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="extender-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: ExtenderServer
    protocol_version = "HTTP/1.1"  # kube-scheduler's Go client keeps connections alive
    # Headers and body are buffered and sent together when the request is done: one write, not two
    # (each write gives up the GIL, and takes it back only when the informer threads let go of it).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True  # with Nagle on, a reply larger than the buffer waits for an ACK

    def do_GET(self) -> None:
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
        if verb not in ("filter", "prioritize"):
            self._discard_body()
            self._reply(HTTPStatus.NOT_FOUND, b"POST /filter or /prioritize\n", "text/plain")
            return
        started = time.perf_counter()
        status = self._serve_verb(verb)
        metrics = self.server.metrics
        metrics.latency.labels(verb).observe(time.perf_counter() - started)
        metrics.requests.labels(verb, str(int(status))).inc()

    def _serve_verb(self, verb: str) -> HTTPStatus:
        try:
            args = parse_args(self._read_body())
        except ProtocolError as error:
            log.warning("bad %s request: %s", verb, error, extra=fields(verb=verb, client=self.client_address[0]))
            return self._reply(HTTPStatus.BAD_REQUEST, f"{error}\n".encode(), "text/plain")
        if not self.server.ready():
            return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b"informer caches not synced yet\n", "text/plain")
        extender = self.server.extender
        try:
            if verb == "filter":
                outcome = extender.filter(args.pod, args.node_names)
                metrics = self.server.metrics
                metrics.filtered_nodes.labels("passed").inc(len(outcome.passed))
                metrics.filtered_nodes.labels("failed").inc(len(outcome.failed))
                body = encode_filter_result(args, outcome.passed, outcome.failed)
            else:
                body = encode_ranks(extender.prioritize(args.pod, args.node_names).ranks, args.plain_names)
        except Exception as error:
            log.exception("%s failed", verb, extra=fields(verb=verb))
            return self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, f"{verb} failed: {error}\n".encode(), "text/plain")
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
        return self.rfile.read(length)

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> HTTPStatus:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return status

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)
