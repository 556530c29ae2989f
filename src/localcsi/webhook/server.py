"""The webhook's HTTPS server: POST /mutate (AdmissionReview v1), GET /healthz.

The serving certificate is read again whenever its files change (cert-manager renews it and the kubelet
swaps the mounted Secret's files), so a renewal needs no restart. A body that is not an AdmissionReview
v1 is answered 400 with the reason as text; kube-apiserver then applies the failurePolicy (Ignore). A
failure inside the decision allows the pod unchanged: the webhook never refuses a pod.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram

from localcsi.background_http import BackgroundHTTPServer
from localcsi.logs import fields
from localcsi.webhook.admission import ReviewError, decide, parse_review, review_response
from localcsi.webhook.usage import ClusterLookup

log = logging.getLogger(__name__)

MUTATE_PATH = "/mutate"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 8 * 1024 * 1024  # a review holds a pod (etcd caps objects at 1.5 MiB) and its old version
IDLE_SECONDS = 30.0  # a kept-alive connection with no request for this long is closed
OUTCOMES = ("mutated", "unchanged", "ignored", "error", "bad_request")


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reviews = Counter(
            "localcsi_webhook_reviews",
            "AdmissionReviews answered, by outcome: mutated (capacity request added), unchanged, ignored "
            "(not a Pod CREATE), error (allowed unchanged after an internal error), bad_request (400).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.reviews.labels(outcome)
        self.seconds = Histogram(
            "localcsi_webhook_review_seconds",
            "Time to answer an AdmissionReview, apiserver reads included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
            registry=self.registry,
        )


class TlsFiles:
    """A server SSLContext over a certificate and key file, loaded again when either file changes."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._stamp = self._current_stamp()
        self.context = self._load()  # errors at start are the caller's to report

    def _load(self) -> ssl.SSLContext:
        """A new context: one whose load failed halfway would serve no certificate at all."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def _current_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stats = (os.stat(path) for path in (self.cert_file, self.key_file))
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed; True when a new certificate is in use. A pair that does
        not load (half written, key and certificate not matching yet) is tried again next time."""
        try:
            stamp = self._current_stamp()
            if stamp == self._stamp:
                return False
            context = self._load()
        except (OSError, ssl.SSLError) as error:
            log.warning("serving certificate not reloaded: %s", error, extra=fields(cert=self.cert_file))
            return False
        self.context, self._stamp = context, stamp  # connections accepted from now on use it
        log.info("serving certificate reloaded", extra=fields(cert=self.cert_file))
        return True


class WebhookServer(BackgroundHTTPServer):
    thread_name = "webhook-https"

    def __init__(
        self,
        address: tuple[str, int],
        tls: TlsFiles,
        lookup: ClusterLookup,
        ready: Callable[[], bool] = lambda: True,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self.tls = tls
        self.lookup = lookup
        self.ready = ready
        self.metrics = metrics or WebhookMetrics()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        # The handshake happens in the handler's thread: a slow or silent client must not stall accept().
        return self.tls.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"  # kube-apiserver keeps connections alive
    timeout = IDLE_SECONDS

    def setup(self) -> None:
        super().setup()
        self.request.do_handshake()  # errors end the connection through handle_error, logged at debug

    def do_GET(self) -> None:
        if urlsplit(self.path).path != HEALTH_PATH:
            self._reply(HTTPStatus.NOT_FOUND, f"GET {HEALTH_PATH} or POST {MUTATE_PATH}\n".encode(), "text/plain")
        elif self.server.ready():
            self._reply(HTTPStatus.OK, b"ok\n", "text/plain")
        else:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, b"StorageClass cache not synced yet\n", "text/plain")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != MUTATE_PATH:
            self.close_connection = True  # the body is not read
            self._reply(HTTPStatus.NOT_FOUND, f"POST {MUTATE_PATH}\n".encode(), "text/plain")
            return
        started = time.perf_counter()
        outcome = self._review()
        metrics = self.server.metrics
        metrics.reviews.labels(outcome).inc()
        metrics.seconds.observe(time.perf_counter() - started)

    def _review(self) -> str:
        try:
            review = parse_review(self._read_body())
        except ReviewError as error:
            log.warning("bad AdmissionReview: %s", error, extra=fields(client=self.client_address[0]))
            self._reply(HTTPStatus.BAD_REQUEST, f"{error}\n".encode(), "text/plain")
            return "bad_request"
        try:
            decision = decide(review, self.server.lookup)
        except Exception:
            log.exception("admission of pod %s failed; allowed unchanged", review.label, extra=fields(uid=review.uid))
            self._reply(HTTPStatus.OK, review_response(review.uid, None), "application/json")
            return "error"
        extra = fields(pod=review.label, uid=review.uid, outcome=decision.outcome, reason=decision.reason)
        if decision.outcome == "mutated":
            log.info("pod %s marked: %s", review.label, decision.reason, extra=extra)
        elif decision.outcome == "ignored":
            log.warning("review not handled: %s", decision.reason, extra=extra)
        else:
            log.debug("pod %s unchanged: %s", review.label, decision.reason, extra=extra)
        self._reply(HTTPStatus.OK, review_response(review.uid, decision.patch), "application/json")
        return decision.outcome

    def _read_body(self) -> bytes:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            raise ReviewError("a Content-Length header with the body's size is required")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ReviewError(f"body of {length} bytes is over {MAX_BODY_BYTES}")
        body = self.rfile.read(length)
        if content_type != "application/json":
            raise ReviewError(f"Content-Type must be application/json, not {content_type or 'missing'!r}")
        return body

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("https: " + format, *args)
