"""KubeApi against a real HTTP(S) server on loopback (localcsi.testing.stub_apiserver): error statuses,
what goes on the wire (content types, query encoding, paths, headers), watch streams, timeouts, TLS with
the openssl CLI's certificates, and renewing credentials after a 401."""

from __future__ import annotations

import json
import os
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3

from localcsi import __version__
from localcsi.k8s import errors
from localcsi.k8s.credentials import Auth, ClientCertificate, StaticCredentials, TokenFile
from localcsi.k8s.informer import builtin_source
from localcsi.k8s.kubeconfig import ClusterConfig, load_in_cluster
from localcsi.k8s.resources import LOGICAL_VOLUME, CustomResources
from localcsi.k8s.rest import MERGE_PATCH, KubeApi, WatchEvent, resource_path, ssl_context
from localcsi.testing.certs import ClientCert, ClusterCerts, make_certs, make_client_cert
from localcsi.testing.stub_apiserver import Reply, Request, StubApiserver, status_reply

pytestmark = pytest.mark.unit


def plain(server: StubApiserver, auth: Auth | None = None) -> KubeApi:
    return KubeApi(ClusterConfig(server.url, credentials=StaticCredentials(auth or Auth())))


def line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected", "reason"),
    [
        (status_reply(404, "NotFound", 'logicalvolumes.localcsi.io "pv-1" not found'), errors.NotFound, "NotFound"),
        (status_reply(409, "AlreadyExists", '"pv-1" already exists'), errors.AlreadyExists, "AlreadyExists"),
        (status_reply(409, "Conflict", "the object has been modified"), errors.Conflict, "Conflict"),
        (status_reply(410, "Expired", "too old resource version"), errors.Gone, "Expired"),
        (status_reply(422, "Invalid", "spec.size: Invalid value: -1"), errors.Invalid, "Invalid"),
    ],
)  # fmt: skip
def test_error_statuses_raise_typed_errors_with_the_status_message(
    reply: Reply, expected: type[errors.KubeError], reason: str
) -> None:
    with StubApiserver(lambda _: reply) as server, pytest.raises(expected) as raised:
        plain(server).create("/apis/localcsi.io/v1alpha1/logicalvolumes", {"metadata": {"name": "pv-1"}})
    assert (raised.value.status, raised.value.reason, raised.value.message) == (
        reply.status,
        reason,
        reply.body["message"],
    )


def test_an_error_without_a_status_body_carries_the_http_reason() -> None:
    bad_gateway = Reply(502, b"<html>bad gateway</html>", reason="Bad Gateway")
    with StubApiserver(lambda _: bad_gateway) as server, pytest.raises(errors.KubeError) as raised:
        plain(server).get("/api/v1/nodes")
    assert (raised.value.status, raised.value.reason, raised.value.message) == (502, "Bad Gateway", "Bad Gateway")


def test_custom_resources_get_and_delete_of_a_missing_object_are_none_and_false() -> None:
    with StubApiserver(lambda _: status_reply(404, "NotFound", "not found")) as server:
        volumes = CustomResources(plain(server), LOGICAL_VOLUME)
        assert volumes.get("pv-1") is None
        assert volumes.delete("pv-1") is False
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/apis/localcsi.io/v1alpha1/logicalvolumes/pv-1"),
        ("DELETE", "/apis/localcsi.io/v1alpha1/logicalvolumes/pv-1"),
    ]


# -- what is sent ---------------------------------------------------------------------------------------


def test_patches_are_json_merge_patches_of_the_object_or_its_status() -> None:
    with StubApiserver(lambda request: Reply(body={"echo": request.json()})) as server:
        volumes = CustomResources(plain(server), LOGICAL_VOLUME)
        assert volumes.patch("pv-1", {"metadata": {"annotations": {"a": None}}}) == {
            "echo": {"metadata": {"annotations": {"a": None}}}
        }
        volumes.patch_status("pv-1", {"phase": "Ready"})
    patch, status = server.requests
    assert (patch.method, patch.path, patch.headers["content-type"]) == (
        "PATCH",
        "/apis/localcsi.io/v1alpha1/logicalvolumes/pv-1",
        MERGE_PATCH,
    )
    assert (status.path, status.headers["content-type"]) == (
        "/apis/localcsi.io/v1alpha1/logicalvolumes/pv-1/status",
        MERGE_PATCH,
    )
    assert status.json() == {"status": {"phase": "Ready"}}


def test_create_sends_json_with_the_kind_and_our_user_agent_and_token() -> None:
    with StubApiserver(lambda request: Reply(201, request.json())) as server:
        created = CustomResources(plain(server, Auth(token="abc")), LOGICAL_VOLUME).create(
            {"metadata": {"name": "pv-1"}}
        )
    (request,) = server.requests
    assert created == {"apiVersion": "localcsi.io/v1alpha1", "kind": "LogicalVolume", "metadata": {"name": "pv-1"}}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == f"localcsi/{__version__}"
    assert request.headers["authorization"] == "Bearer abc"


def test_selectors_are_url_encoded_and_empty_ones_left_out() -> None:
    listing = {"metadata": {"resourceVersion": "42"}, "items": [{"metadata": {"name": "a"}}]}
    with StubApiserver(lambda _: Reply(body=listing)) as server:
        volumes = CustomResources(plain(server), LOGICAL_VOLUME)
        assert volumes.list("app in (a,b),tier!=x&y", "spec.nodeName=node 1") == ([{"metadata": {"name": "a"}}], "42")
        volumes.list()
    selected, everything = server.requests
    assert selected.query_string == (
        "labelSelector=app+in+%28a%2Cb%29%2Ctier%21%3Dx%26y&fieldSelector=spec.nodeName%3Dnode+1"
    )
    assert selected.query == {"labelSelector": "app in (a,b),tier!=x&y", "fieldSelector": "spec.nodeName=node 1"}
    assert everything.query_string == ""


def test_paths_quote_names_and_refuse_ones_that_would_reach_another_path() -> None:
    assert resource_path("", "v1", "persistentvolumeclaims", "data 1", namespace="shop") == (
        "/api/v1/namespaces/shop/persistentvolumeclaims/data%201"
    )
    assert resource_path("storage.k8s.io", "v1", "storageclasses", "a?b#c%") == (
        "/apis/storage.k8s.io/v1/storageclasses/a%3Fb%23c%25"
    )
    for name in ("", "..", ".", "a/b", "../../api/v1/secrets"):
        with pytest.raises(ValueError, match="cannot be part of an API path"):
            resource_path("", "v1", "persistentvolumeclaims", name, namespace="shop")
    with pytest.raises(ValueError, match="cannot be part of an API path"):
        resource_path("", "v1", "persistentvolumeclaims", "data", namespace="../kube-system")


def test_a_bad_name_sends_nothing() -> None:
    with StubApiserver(lambda _: Reply()) as server, pytest.raises(ValueError, match="cannot be part of an API path"):
        CustomResources(plain(server), LOGICAL_VOLUME).get("../nodelocalstorages/node-1")
    assert server.requests == []


# -- watch ----------------------------------------------------------------------------------------------


def test_a_watch_stream_split_across_chunks_yields_events_then_raises_its_error_event() -> None:
    added, bookmark = {"metadata": {"name": "a", "resourceVersion": "11"}}, {"metadata": {"resourceVersion": "12"}}
    stream = line("ADDED", added) + line("BOOKMARK", bookmark)
    expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 10 (12)"}
    chunks = [stream[:7], stream[7:40], stream[40:], line("ERROR", expired)[:-1]]  # the last line has no newline
    with StubApiserver(lambda _: Reply(chunks=chunks)) as server:
        _, watch = builtin_source(plain(server), "pods", label_selector="app=db")
        seen: list[WatchEvent] = []
        with pytest.raises(errors.Gone, match="too old resource version"):
            seen.extend(watch("10", 300))
    assert seen == [WatchEvent("ADDED", added), WatchEvent("BOOKMARK", bookmark)]
    (request,) = server.requests
    assert request.path == "/api/v1/pods"
    assert request.query == {
        "labelSelector": "app=db",
        "watch": "true",
        "allowWatchBookmarks": "true",
        "resourceVersion": "10",
        "timeoutSeconds": "300",
    }


def test_watch_events_arrive_as_the_server_writes_them() -> None:
    release = threading.Event()

    def slow_stream() -> Iterator[bytes]:
        yield line("ADDED", {"metadata": {"name": "first"}})
        release.wait(5)
        yield line("ADDED", {"metadata": {"name": "second"}})

    with StubApiserver(lambda _: Reply(chunks=slow_stream())) as server:
        events = CustomResources(plain(server), LOGICAL_VOLUME).watch("1", 60)
        assert next(events).object == {"metadata": {"name": "first"}}  # while the server still holds the second
        release.set()
        assert [event.object["metadata"]["name"] for event in events] == ["second"]


def test_a_watch_refused_at_once_raises_the_status() -> None:
    with StubApiserver(lambda _: status_reply(403, "Forbidden", "cannot watch pods")) as server:
        _, watch = builtin_source(plain(server), "pods")
        with pytest.raises(errors.Forbidden, match="cannot watch pods"):
            list(watch("", 60))
    assert "resourceVersion" not in server.requests[0].query  # no version: from the current state


# -- timeouts and the network --------------------------------------------------------------------------


def test_a_request_that_hangs_times_out_and_a_create_is_not_sent_twice() -> None:
    def hang(_: Request) -> Reply:
        time.sleep(1.5)
        return Reply()

    with StubApiserver(hang) as server:
        api = plain(server)
        started = time.monotonic()
        with pytest.raises(urllib3.exceptions.HTTPError):
            api.get("/api/v1/nodes", timeout=0.2)
        with pytest.raises(urllib3.exceptions.HTTPError):
            api.create("/api/v1/namespaces/default/events", {"metadata": {"name": "e"}}, timeout=0.2)
        elapsed = time.monotonic() - started
    assert elapsed < 1.4, elapsed
    assert [r.method for r in server.requests] == ["GET", "GET", "POST"]  # one retry, for the idempotent GET only


def test_a_refused_connection_is_a_urllib3_error_as_the_informer_expects() -> None:
    with StubApiserver(lambda _: Reply()) as server:
        url = server.url
    api = KubeApi(ClusterConfig(url))
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.get("/api/v1/nodes", timeout=1)


# -- credentials -----------------------------------------------------------------------------------------


def test_static_credentials_get_one_401_and_no_retry() -> None:
    unauthorized = status_reply(401, "Unauthorized", "Unauthorized")
    with StubApiserver(lambda _: unauthorized) as server, pytest.raises(errors.KubeError) as raised:
        plain(server, Auth(token="revoked")).get("/api/v1/nodes")
    assert raised.value.status == 401
    assert len(server.requests) == 1


def test_a_token_file_is_read_again_after_a_401(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")

    def handle(request: Request) -> Reply:
        if request.headers.get("authorization") != "Bearer new":
            return status_reply(401, "Unauthorized", "Unauthorized")
        return Reply(body={"kind": "NodeList", "items": []})

    with StubApiserver(handle) as server:
        api = KubeApi(ClusterConfig(server.url, credentials=TokenFile(token)))
        with pytest.raises(errors.KubeError, match="401"):
            api.get("/api/v1/nodes")
        token.write_text("new\n")  # the kubelet rotated it
        assert api.get("/api/v1/nodes") == {"kind": "NodeList", "items": []}
    # each 401 re-reads the file once: the rotated token is used at once, not after the minute's re-read
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer old"] * 3 + ["Bearer new"]


# -- TLS ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    certs: ClusterCerts
    client: ClientCert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for the in-cluster DNS names only (no IP address: reaching 127.0.0.1
    needs tls-server-name), and a client certificate."""
    certs = make_certs(tmp_path_factory.mktemp("pki"), ip_addresses=())
    return Pki(certs, make_client_cert(certs, "client", "system:node:node-1", "system:nodes"))


def https_server(pki: Pki, handle: Any = None) -> StubApiserver:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.certs.server_cert, pki.certs.server_key)
    context.load_verify_locations(pki.certs.ca_cert)
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked when one is presented
    return StubApiserver(handle or (lambda _: Reply(body={"kind": "NodeList"})), tls=context)


def test_tls_verifies_the_server_for_tls_server_name_and_presents_the_client_certificate(pki: Pki) -> None:
    certificate = ClientCertificate(pki.client.cert.read_bytes(), pki.client.key.read_bytes())
    ca = pki.certs.ca_cert.read_bytes()
    with https_server(pki) as server:
        credentials = StaticCredentials(Auth(certificate=certificate))
        by_ip = KubeApi(ClusterConfig(server.url, ca_pem=ca, credentials=credentials))
        with pytest.raises(urllib3.exceptions.HTTPError, match=r"certificate is not valid for '127\.0\.0\.1'"):
            by_ip.get("/api/v1/nodes")
        by_name = KubeApi(
            ClusterConfig(server.url, ca_pem=ca, tls_server_name="kubernetes.default", credentials=credentials)
        )
        assert by_name.get("/api/v1/nodes") == {"kind": "NodeList"}
    assert [r.client_common_name for r in server.requests] == ["system:node:node-1"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_refuses_a_server_signed_by_another_ca_unless_told_to_skip_verification(pki: Pki, tmp_path: Path) -> None:
    other_ca = make_certs(tmp_path, ip_addresses=()).ca_cert.read_bytes()
    with https_server(pki) as server:
        with pytest.raises(urllib3.exceptions.HTTPError, match="CERTIFICATE_VERIFY_FAILED"):
            KubeApi(ClusterConfig(server.url, ca_pem=other_ca, tls_server_name="kubernetes")).get("/api/v1/nodes")
        insecure = KubeApi(ClusterConfig(server.url, insecure_skip_tls_verify=True))
        assert insecure.get("/api/v1/nodes") == {"kind": "NodeList"}


def test_in_cluster_config_reaches_the_apiserver_with_the_ca_and_rotated_token(pki: Pki, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    with https_server(pki, lambda request: Reply(body={"auth": request.headers["authorization"]})) as server:
        port = server.url.rsplit(":", 1)[1]
        environ = {"KUBERNETES_SERVICE_HOST": "localhost", "KUBERNETES_SERVICE_PORT": port}
        config = load_in_cluster(environ, token_path=token, ca_path=pki.certs.ca_cert)
        api = KubeApi(config)
        assert api.get("/api/v1/nodes") == {"auth": "Bearer first"}
        token.write_text("second")
        assert api.get("/api/v1/nodes") == {"auth": "Bearer first"}  # not re-read on every request
        assert config.credentials.expire()  # as after a 401, or once TOKEN_FILE_REREAD_SECONDS have passed
        assert api.get("/api/v1/nodes") == {"auth": "Bearer second"}


def test_a_client_key_is_loaded_from_private_files_removed_right_after(tmp_path: Path, pki: Pki) -> None:
    """ssl loads a chain from files only: what was on disk while it loaded, and what is left after."""
    seen: list[tuple[int, int, int]] = []

    class Recording(ssl.SSLContext):
        def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
            cert, key = Path(certfile), Path(keyfile)
            seen.append(
                (
                    stat.S_IMODE(cert.parent.stat().st_mode),
                    stat.S_IMODE(cert.stat().st_mode),
                    stat.S_IMODE(key.stat().st_mode),
                )
            )
            assert key.read_bytes() == pki.client.key.read_bytes()
            super().load_cert_chain(certfile, keyfile, password)

    certificate = ClientCertificate(pki.client.cert.read_bytes(), pki.client.key.read_bytes())
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()

    def create(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = Recording(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=kwargs.get("cadata"))
        return context

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssl, "create_default_context", create)
        patch.setattr("tempfile.tempdir", str(temp_root))
        context = ssl_context(ClusterConfig("https://kubernetes", ca_pem=pki.certs.ca_cert.read_bytes()), certificate)
    assert isinstance(context, Recording)
    assert seen == [(0o700, 0o600, 0o600)]
    assert os.listdir(temp_root) == []
