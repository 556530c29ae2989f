"""/metrics and /healthz side by side: one server per address, real HTTP on loopback."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from localcsi.metrics.http import ObservabilityServer, serve
from localcsi.metrics.text import TextFamily

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


LABELS = ("vg", "lv")


class VolumeCounter(Collector):
    """A per-volume counter, written by hand (TextFamily) or by prometheus_client (CounterMetricFamily)."""

    SERIES = (("localcsi-a", 'lv "1"'), ("localcsi-a", "lv\\2\n"))
    VALUES = (5, 1_048_576)

    def __init__(self, by_hand: bool) -> None:
        self.by_hand = by_hand

    def collect(self) -> Iterator[Metric]:
        if self.by_hand:
            yield TextFamily("localcsi_test_bytes", "Bytes.", "counter", LABELS, series=self.SERIES, values=self.VALUES)
            return
        family = CounterMetricFamily("localcsi_test_bytes", "Bytes.", labels=LABELS)
        for labels, value in zip(self.SERIES, self.VALUES, strict=True):
            family.add_metric(labels, value)
        yield family


def test_metrics_serve_families_written_by_hand_as_prometheus_client_would_write_them() -> None:
    served, expected = registry_with(3), registry_with(3)
    served.register(VolumeCounter(by_hand=True))
    expected.register(VolumeCounter(by_hand=False))
    server = ObservabilityServer("127.0.0.1:0", registry=served)
    server.start()
    try:
        status, content_type, body = get(server.port, "/metrics")
    finally:
        server.stop()
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert body == generate_latest(expected).decode()
    assert 'localcsi_test_bytes_total{lv="lv\\\\2\\n",vg="localcsi-a"} 1.048576e+06' in body.splitlines()
