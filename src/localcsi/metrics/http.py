"""``GET /healthz`` and ``GET /metrics`` over HTTP, from a thread.

One server per address: a process given the same address for ``--health-address`` and
``--metrics-address`` serves both paths on one port (``serve``). A server without a registry serves
only ``/healthz``; a server with one serves ``/metrics`` too, and its ``/healthz`` asks the same prober,
so "/healthz sits beside /metrics" wherever metrics are promised. Any other path is 404. ``/metrics`` is
the registry in the text format 0.0.4, through ``metrics.text.exposition``: prometheus_client's output,
with the per-volume families the node plugin writes itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Final
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry

from localcsi.background_http import BackgroundHTTPServer
from localcsi.metrics.text import exposition

log = logging.getLogger(__name__)

HEALTH_PATH: Final = "/healthz"
METRICS_PATH: Final = "/metrics"

# Returns None when the process is healthy, else the reason it is not.
Prober = Callable[[], str | None]


def always_healthy() -> str | None:
    return None


def split_host_port(address: str) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT or :PORT (every interface); port 0 picks a free one."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r}: expected HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


class ObservabilityServer(BackgroundHTTPServer):
    """Serves HEALTH_PATH, and METRICS_PATH when given a registry; ``start`` and ``stop`` bracket its life."""

    def __init__(
        self, address: str, prober: Prober = always_healthy, registry: CollectorRegistry | None = None
    ) -> None:
        self.prober = prober
        self.registry = registry
        super().__init__(split_host_port(address), _Handler)

    @property
    def paths(self) -> tuple[str, ...]:
        return (HEALTH_PATH, METRICS_PATH) if self.registry is not None else (HEALTH_PATH,)

    def start(self) -> None:
        super().start()
        log.info("serving %s on port %d", " and ".join(self.paths), self.port)

    def check(self) -> str | None:
        try:
            return self.prober()
        except Exception as error:
            log.exception("health probe failed unexpectedly")
            return f"probe error: {type(error).__name__}: {error}"


def serve(
    stack: contextlib.ExitStack,
    *,
    health_address: str = "",
    metrics_address: str = "",
    prober: Prober = always_healthy,
    registry: CollectorRegistry = REGISTRY,
) -> list[ObservabilityServer]:
    """Start what the two flags ask for (one server when they are the same address); ``stack`` stops them."""
    servers = []
    if metrics_address:
        servers.append(ObservabilityServer(metrics_address, prober, registry))
    if health_address and health_address != metrics_address:
        servers.append(ObservabilityServer(health_address, prober))
    for server in servers:
        server.start()
        stack.callback(server.stop)
    return servers


class _Handler(BaseHTTPRequestHandler):
    server: ObservabilityServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == HEALTH_PATH:
            reason = self.server.check()
            if reason is None:
                self._reply(HTTPStatus.OK, b"ok", "text/plain; charset=utf-8")
                return
            log.warning("health check failed: %s", reason)
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, reason.encode(), "text/plain; charset=utf-8")
        elif path == METRICS_PATH and self.server.registry is not None:
            self._reply(HTTPStatus.OK, exposition(self.server.registry), CONTENT_TYPE_LATEST)
        else:
            hint = f"not found; try {' or '.join(self.server.paths)}\n"
            self._reply(HTTPStatus.NOT_FOUND, hint.encode(), "text/plain; charset=utf-8")

    def _reply(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: %s %s", self.address_string(), format % args)
