"""/metrics and /healthz side by side: one server per address, real HTTP on loopback."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Gauge

from localcsi.metrics.http import ObservabilityServer, serve

pytestmark = pytest.mark.unit


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def registry_with(value: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("localcsi_test_value", "A value for the test.", registry=registry).set(value)
    return registry


def test_a_metrics_server_serves_the_registry_and_healthz() -> None:
    reasons: list[str | None] = [None]
    server = ObservabilityServer("127.0.0.1:0", lambda: reasons[0], registry_with(42))
    server.start()
    try:
        status, content_type, body = get(server.port, "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=")
        assert "localcsi_test_value 42.0" in body.splitlines()
        assert get(server.port, "/healthz")[::2] == (200, "ok")
        reasons[0] = "the last cycle is 400 s old"
        assert get(server.port, "/healthz")[::2] == (503, "the last cycle is 400 s old")
        assert get(server.port, "/metrics/x")[0] == 404
    finally:
        server.stop()


def test_a_health_only_server_has_no_metrics() -> None:
    server = ObservabilityServer("127.0.0.1:0")
    server.start()
    try:
        assert get(server.port, "/healthz")[::2] == (200, "ok")
        status, _, body = get(server.port, "/metrics")
        assert status == 404 and "/healthz" in body
    finally:
        server.stop()


def test_serve_one_server_when_both_flags_name_the_same_address() -> None:
    with contextlib.ExitStack() as stack:
        (server,) = serve(stack, health_address="127.0.0.1:0", metrics_address="127.0.0.1:0", registry=registry_with(1))
        assert server.paths == ("/healthz", "/metrics")
        assert get(server.port, "/metrics")[0] == get(server.port, "/healthz")[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)


def test_serve_two_servers_for_two_addresses_and_none_for_none() -> None:
    with contextlib.ExitStack() as stack:
        assert serve(stack) == []
        metrics, health = serve(
            stack, health_address="127.0.0.1:0", metrics_address="[::1]:0", registry=registry_with(7)
        )
        assert (metrics.paths, health.paths) == (("/healthz", "/metrics"), ("/healthz",))
        with urllib.request.urlopen(f"http://[::1]:{metrics.port}/metrics", timeout=10) as response:
            assert "localcsi_test_value 7.0" in response.read().decode()
        assert get(health.port, "/metrics")[0] == 404
