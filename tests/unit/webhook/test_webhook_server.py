"""The webhook's HTTPS server on loopback: answers, refusals, health, metrics and certificate reloads."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webhook_objects import OURS, FakeLookup, claim, lookup, pod, pvc_volume, review_body

from localcsi.testing.certs import ClusterCerts, make_certs
from localcsi.webhook.server import TlsFiles, WebhookMetrics, WebhookServer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClusterCerts:
    return make_certs(tmp_path_factory.mktemp("pki"), ("127.0.0.1",))


class Ready:
    value = True

    def __call__(self) -> bool:
        return self.value


class Broken(FakeLookup):
    def claim(self, namespace: str, name: str) -> Any:
        raise RuntimeError("a bug")


@pytest.fixture
def served(certs: ClusterCerts, tmp_path: Path) -> Iterator[tuple[WebhookServer, Ready, Path]]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    ready = Ready()
    server = WebhookServer(("127.0.0.1", 0), TlsFiles(str(cert), str(key)), lookup(claim("data", OURS)), ready)
    server.start()
    try:
        yield server, ready, tmp_path
    finally:
        server.stop()


def connect(server: WebhookServer, certs: ClusterCerts) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)


def call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    connection.request(method, path, body=body or None, headers={"Content-Type": content_type} if body else {})
    response = connection.getresponse()
    return response.status, response.read()


def reviews(server: WebhookServer, outcome: str) -> float:
    value = server.metrics.registry.get_sample_value("localcsi_webhook_reviews_total", {"outcome": outcome})
    return float(value or 0)


def test_reviews_are_answered_on_one_kept_alive_connection(served: Any, certs: ClusterCerts) -> None:
    server, _, _ = served
    connection = connect(server, certs)
    status, body = call(connection, "POST", "/mutate?timeout=5s", review_body(pod(pvc_volume("d", "data"))))
    assert status == 200
    response = json.loads(body)["response"]
    assert (response["allowed"], response["patchType"]) == (True, "JSONPatch")
    assert json.loads(base64.b64decode(response["patch"]))[0]["path"] == "/spec/containers/0/resources"
    status, body = call(connection, "POST", "/mutate", review_body(pod()))
    assert status == 200
    assert "patch" not in json.loads(body)["response"]
    assert (reviews(server, "mutated"), reviews(server, "unchanged")) == (1, 1)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"not json", "application/json", "the body is not JSON"),
        (b'{"kind": "AdmissionReview"}', "application/json", "expected apiVersion admission.k8s.io/v1"),
        (review_body(pod()), "text/plain", "Content-Type must be application/json, not 'text/plain'"),
    ],
)
def test_malformed_reviews_are_answered_400(
    served: Any, certs: ClusterCerts, body: bytes, content_type: str, message: str
) -> None:
    server, _, _ = served
    connection = connect(server, certs)
    status, answer = call(connection, "POST", "/mutate", body, content_type)
    assert (status, message in answer.decode()) == (400, True), answer
    assert call(connection, "POST", "/mutate", review_body(pod()))[0] == 200  # the connection still serves
    assert reviews(server, "bad_request") == 1


def test_a_body_without_length_or_too_large_is_refused(served: Any, certs: ClusterCerts) -> None:
    server, _, _ = served
    connection = connect(server, certs)
    connection.putrequest("POST", "/mutate")
    connection.putheader("Content-Type", "application/json")
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, b"Content-Length" in response.read()) == (400, True)
    connection = connect(server, certs)
    connection.putrequest("POST", "/mutate")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(64 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, b"is over" in response.read()) == (400, True)


def test_an_internal_error_allows_the_pod_unchanged(certs: ClusterCerts) -> None:
    server = WebhookServer(
        ("127.0.0.1", 0), TlsFiles(str(certs.server_cert), str(certs.server_key)), Broken(), metrics=WebhookMetrics()
    )
    server.start()
    try:
        status, body = call(connect(server, certs), "POST", "/mutate", review_body(pod(pvc_volume("d", "data"))))
    finally:
        server.stop()
    assert status == 200
    assert json.loads(body)["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    assert reviews(server, "error") == 1


def test_health_and_other_paths(served: Any, certs: ClusterCerts) -> None:
    server, ready, _ = served
    connection = connect(server, certs)
    assert call(connection, "GET", "/healthz") == (200, b"ok\n")
    ready.value = False
    assert call(connection, "GET", "/healthz") == (503, b"StorageClass cache not synced yet\n")
    assert call(connection, "GET", "/mutate")[0] == 404
    assert call(connect(server, certs), "POST", "/validate", b"{}")[0] == 404


def test_clients_that_do_not_speak_tls_do_not_stop_the_server(served: Any, certs: ClusterCerts) -> None:
    server, _, _ = served
    silent = socket.create_connection(("127.0.0.1", server.port))  # never says anything
    plain = socket.create_connection(("127.0.0.1", server.port))
    plain.sendall(b"POST /mutate HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    plain.settimeout(5)
    assert plain.recv(100) == b""  # the TLS handshake fails and the connection is closed
    try:
        assert call(connect(server, certs), "GET", "/healthz")[0] == 200
    finally:
        silent.close()
        plain.close()


def served_certificate(server: WebhookServer) -> bytes:
    context = ssl._create_unverified_context()  # noqa: S323 (reading which certificate is served)
    with socket.create_connection(("127.0.0.1", server.port)) as raw, context.wrap_socket(raw) as tls:
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_a_renewed_certificate_is_served_without_a_restart(served: Any, certs: ClusterCerts) -> None:
    server, _, directory = served
    renewed = make_certs(directory / "renewed", ("127.0.0.1",))
    before = served_certificate(server)
    assert server.tls.reload_if_changed() is False  # nothing changed
    shutil.copy(renewed.server_cert, directory / "tls.crt")  # the certificate first, its key not yet
    assert server.tls.reload_if_changed() is False
    assert served_certificate(server) == before  # a pair that does not match is not taken
    shutil.copy(renewed.server_key, directory / "tls.key")
    assert server.tls.reload_if_changed() is True
    assert served_certificate(server) != before
    assert ssl.DER_cert_to_PEM_cert(served_certificate(server)) == renewed.server_cert.read_text()
