import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from extender_objects import nls, pod, pvc, storage_class

from localcsi.extender.cache import NODE_LOCAL_STORAGES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES
from localcsi.extender.server import MAX_BODY_BYTES, ExtenderServer
from localcsi.extender.service import Extender

pytestmark = pytest.mark.unit


class Ready:
    value = True

    def __call__(self) -> bool:
        return self.value


@pytest.fixture
def ready() -> Ready:
    return Ready()


@pytest.fixture
def server(ready: Ready) -> Iterator[ExtenderServer]:
    extender = Extender()
    extender.apply(STORAGE_CLASSES, "ADDED", storage_class())
    extender.apply(NODE_LOCAL_STORAGES, "ADDED", nls("big", ("vg0", 100)))
    extender.apply(NODE_LOCAL_STORAGES, "ADDED", nls("small", ("vg0", 5)))
    extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", pvc("data", "10Gi"))
    server = ExtenderServer(("127.0.0.1", 0), extender, ready=ready)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: ExtenderServer) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(str(host), int(port), timeout=10)


def call(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    return response.status, response.read()


def args(the_pod: dict[str, Any], *nodes: str) -> bytes:
    return json.dumps({"Pod": the_pod, "Nodes": None, "NodeNames": list(nodes)}).encode()


def test_filter_then_prioritize_over_one_kept_alive_connection(server: ExtenderServer) -> None:
    conn = connect(server)
    status, raw = call(conn, "POST", "/filter", args(pod("p", "data"), "big", "small", "unknown"))
    assert status == 200
    result = json.loads(raw)
    assert result["NodeNames"] == ["big"]
    assert set(result["FailedAndUnresolvableNodes"]) == {"small", "unknown"}
    assert result["FailedAndUnresolvableNodes"]["small"] == "localcsi: no VG has room for PVC default/data (10 GiB)"
    status, raw = call(conn, "POST", "/prioritize", args(pod("p", "data"), "big"))
    assert status == 200
    assert json.loads(raw) == []  # its one node has the lowest score: relative to it, nothing to add
    conn.close()


def test_prioritize_answers_scores_relative_to_the_lowest(server: ExtenderServer) -> None:
    server.extender.apply(NODE_LOCAL_STORAGES, "ADDED", nls("half", ("vg0", 50)))
    server.extender.apply(NODE_LOCAL_STORAGES, "ADDED", nls("fuller", ("vg0", 30)))
    conn = connect(server)
    status, raw = call(conn, "POST", "/filter", go_args(pod("p", "data"), "big", "half", "fuller"))
    assert (status, json.loads(raw)["NodeNames"]) == (200, ["big", "half", "fuller"])
    status, raw = call(conn, "POST", "/prioritize", go_args(pod("p", "data"), "big", "half", "fuller"))
    # binpack, 100 GiB each, 10 GiB more: big 10 % full (1), half 60 % (6), fuller 80 % (8); less 1
    assert (status, json.loads(raw)) == (200, [{"Host": "half", "Score": 5}, {"Host": "fuller", "Score": 7}])
    conn.close()


def go_args(the_pod: dict[str, Any], *nodes: str) -> bytes:
    """As kube-scheduler's Go encoder writes them: compact."""
    return json.dumps({"Pod": the_pod, "Nodes": None, "NodeNames": list(nodes)}, separators=(",", ":")).encode()


def test_names_the_scheduler_sends_again_answer_as_the_first_time(server: ExtenderServer) -> None:
    conn = connect(server)
    nodes = ("big", "small", "unknown")
    answers = [call(conn, "POST", "/filter", go_args(pod("p", "data"), *nodes)) for _ in range(2)]
    assert answers[0] == answers[1]
    assert server.node_names.get(b'["big","small","unknown"]') is not None  # the second was not decoded
    assert server.node_names.get(b'["big"]') == ["big"]  # what filter passed, for prioritize
    passed = json.loads(answers[0][1])["NodeNames"]
    status, raw = call(conn, "POST", "/prioritize", go_args(pod("p", "data"), *passed))
    assert (status, json.loads(raw)) == (200, [])
    conn.close()


def test_a_pod_without_our_volumes_passes_every_node(server: ExtenderServer) -> None:
    status, raw = call(connect(server), "POST", "/filter", args(pod("plain"), "big", "small", "unknown"))
    assert status == 200
    assert json.loads(raw)["NodeNames"] == ["big", "small", "unknown"]


def test_a_malformed_request_gets_400_with_the_reason(server: ExtenderServer) -> None:
    conn = connect(server)
    status, raw = call(conn, "POST", "/filter", b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": []}')
    assert (status, raw) == (400, b"Pod.metadata.uid is required and must be a non-empty string\n")
    status, raw = call(conn, "POST", "/prioritize", b"nonsense")
    assert status == 400 and raw.startswith(b"request body is not JSON")
    # the connection is still usable after a 400
    assert call(conn, "POST", "/filter", args(pod("plain"), "big"))[0] == 200


def test_an_oversized_body_is_refused_without_reading_it(server: ExtenderServer) -> None:
    conn = connect(server)
    conn.putrequest("POST", "/filter")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400
    assert b"outside" in response.read()


def test_unknown_paths_are_404(server: ExtenderServer) -> None:
    conn = connect(server)
    assert call(conn, "POST", "/bind", b"{}")[0] == 404
    assert call(conn, "GET", "/filter")[0] == 404


def test_until_the_caches_sync_verbs_answer_503_and_healthz_says_why(server: ExtenderServer, ready: Ready) -> None:
    ready.value = False
    conn = connect(server)
    assert call(conn, "GET", "/healthz") == (503, b"informer caches not synced yet\n")
    assert call(conn, "POST", "/filter", args(pod("p", "data"), "big"))[0] == 503
    ready.value = True
    assert call(conn, "GET", "/healthz") == (200, b"ok\n")


def test_metrics_count_requests_and_reservations(server: ExtenderServer) -> None:
    conn = connect(server)
    call(conn, "POST", "/filter", args(pod("p", "data"), "big", "small"))
    call(conn, "POST", "/filter", b"junk")
    call(conn, "POST", "/filter", b"junk")
    call(conn, "POST", "/prioritize", args(pod("p", "data"), "big"))
    status, raw = call(conn, "GET", "/metrics")
    text = raw.decode()
    assert status == 200
    assert 'localcsi_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert 'localcsi_extender_requests_total{code="400",verb="filter"} 2.0' in text
    assert 'localcsi_extender_requests_total{code="200",verb="prioritize"} 1.0' in text
    assert 'localcsi_extender_request_seconds_count{verb="prioritize"} 1.0' in text
    assert 'localcsi_extender_filtered_nodes_total{result="passed"} 1.0' in text
    assert 'localcsi_extender_filtered_nodes_total{result="failed"} 1.0' in text
    assert "localcsi_extender_reserved_pods 1.0" in text
    assert "localcsi_extender_nodes 2.0" in text
    assert 'localcsi_extender_request_seconds_count{verb="filter"} 3.0' in text
    assert "localcsi_extender_reservations_total 1.0" in text
    assert "localcsi_extender_reservations_expired_total 0.0" in text
    assert "localcsi_extender_claims_read_live_total 0.0" in text


def raw_exchange(server: ExtenderServer, request: bytes) -> bytes:
    """Send ``request`` as it is and read until the server closes the connection."""
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_header_names_are_case_insensitive_and_http_1_0_closes_after_the_answer(server: ExtenderServer) -> None:
    body = args(pod("plain"), "big")
    answer = raw_exchange(server, b"POST /filter HTTP/1.0\r\ncontent-LENGTH: %d\r\n\r\n" % len(body) + body)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in head
    assert json.loads(payload)["NodeNames"] == ["big"]


def test_expect_100_continue_is_answered_before_the_body(server: ExtenderServer) -> None:
    body = args(pod("plain"), "big")
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=10) as sock:
        sock.sendall(b"POST /filter HTTP/1.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"POST /filter\r\n\r\n", b"400"),
        (b"POST /filter HTTP/2.0\r\n\r\n", b"400"),
        (b"POST /filter HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"POST /filter HTTP/1.1\r\nContent-Length: 2\r\n folded: line\r\n\r\n", b"400"),
        (b"POST /filter HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", b"400"),
        (b"POST /filter HTTP/1.1\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n", b"431"),
        (b"POST /filter HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", b"431"),
    ],
)
def test_malformed_request_heads_are_refused_and_the_connection_closed(
    server: ExtenderServer, request_head: bytes, status: bytes
) -> None:
    answer = raw_exchange(server, request_head)  # returns only because the server closes
    assert answer.startswith(b"HTTP/1.1 " + status)


# Found by the fuzz test (test_extender_server_fuzz.py): http.server answered other methods 501 without
# reading their body, and a GET's body was never read, so either body was taken for the next request.
@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "get"])
def test_other_methods_are_405_and_their_body_is_not_read_as_the_next_request(
    server: ExtenderServer, method: str
) -> None:
    conn = connect(server)
    status, raw = call(conn, method, "/filter", b"GET /metrics HTTP/1.1\r\n\r\n")
    assert (status, raw) == (405, b"GET /healthz or /metrics, POST /filter or /prioritize\n")
    assert call(conn, "GET", "/healthz") == (200, b"ok\n")


def test_a_head_request_gets_405_without_a_body(server: ExtenderServer) -> None:
    conn = connect(server)
    conn.request("HEAD", "/healthz")
    response = conn.getresponse()
    assert (response.status, response.getheader("Allow"), response.read()) == (405, "GET, POST", b"")
    assert call(conn, "GET", "/healthz") == (200, b"ok\n")


def test_a_body_sent_with_a_get_is_not_read_as_the_next_request(server: ExtenderServer) -> None:
    conn = connect(server)
    assert call(conn, "GET", "/healthz", b"POST /bind HTTP/1.1\r\n\r\n") == (200, b"ok\n")
    assert call(conn, "GET", "/healthz") == (200, b"ok\n")


def test_a_body_cut_short_by_the_client_is_refused(server: ExtenderServer) -> None:
    body = args(pod("plain"), "big")
    answer = raw_exchange_half_closed(
        server, b"POST /filter HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (len(body) + 5) + body
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"body ended after %d of %d bytes\n" % (len(body), len(body) + 5))


def raw_exchange_half_closed(server: ExtenderServer, request: bytes) -> bytes:
    """Send ``request``, close the sending side, and read until the server closes."""
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer
