"""Generated requests against the extender's real HTTP server (issue 16, item 1): every one is answered,
with a valid answer or a 4xx and its reason, never a 5xx, and the server's memory stays bounded.

The server runs in its own process (extender_fuzz_server.py) over four nodes, StorageClasses of every
kind and PVCs in every state, so that its memory is its own. Each example is one connection: the
request's bytes, then (when client and server agree where the request ends) a pipelined
``GET /healthz`` that must be answered ``ok`` (a server that read too little or too much of a body would
answer it wrongly or not at all), then the end of the client's side. The answers are parsed from the
byte stream until the server closes. What a POST to filter or prioritize must get is decided by the
protocol's own parser (``parse_args``): 400 when it refuses the body, else 200 with a result whose
nodes are all among the request's, every one judged, and scores in 0..10.

``LOCALCSI_FUZZ_EXAMPLES`` sets the number of generated examples (CI's default keeps the test near 20 s
on 2 cores); docs/testing.md ("Fuzzing the extender") has the figures of a 10,000-example run.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import random
import re
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from extender_fuzz_server import CLAIMS, CLASSES, KNOWN_NODES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import localcsi
from localcsi import DRIVER_NAME
from localcsi.extender.protocol import MAX_SCORE, ExtenderArgs, ProtocolError, parse_args
from localcsi.extender.server import MAX_BODY_BYTES

pytestmark = pytest.mark.unit

EXAMPLES = int(os.environ.get("LOCALCSI_FUZZ_EXAMPLES", "300"))
TIMEOUT_SECONDS = 30.0  # an answer slower than this is a hang
HUGE_BODY_BYTES = 8 << 20  # generated bodies go up to this; the server's limit (64 MiB) is claimed, not sent
# Memory, measured in the server's process after warm-up (the heaviest requests, three times), after
# the run, and after the run's requests are replayed twice. Python's own allocated blocks measure leaks
# of objects exactly: what may legitimately grow is bounded by 4 cached NodeNames arrays of up to
# 20,000 names, 1024 parsed quantities, 256 StorageClasses' parameters and the reservations of the
# last 60 s. RSS is held to the warm-up's peak plus 32 MiB. Before every component pinned glibc's mmap
# threshold (localcsi/memory.py), what big requests freed (an 8 MiB body, 20,000 names) stayed resident
# between smaller objects, and where RSS settled wandered from 0 to 70 MiB above the warm-up's peak
# between runs of the very same requests, so the bound was 96 MiB; with the threshold pinned, runs of
# 3000 examples end below the warm-up's peak. A leak of the bodies themselves (about 40 large ones per
# pass, three passes) would fail it several times over. The long runs' figures are in docs/testing.md.
RSS_SLACK_KIB = 32 << 10
BLOCKS_GROWTH = 100_000
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n"
VERBS = ("filter", "prioritize")
HERE = Path(__file__).parent

Json = Any


# -- the server, in its own process --------------------------------------------------------------------


class ServerProcess:
    def __init__(self, stderr: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(localcsi.__file__).parents[1]), str(HERE)])}
        self._stderr = stderr.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "extender_fuzz_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stats(self) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        stats: dict[str, int] = json.loads(self.process.stdout.readline())
        return stats

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


# -- one request, its answers ----------------------------------------------------------------------------


@dataclass
class Request:
    kind: str
    method: str
    path: str
    raw: bytes  # everything sent
    body: bytes  # what the server reads as the body when the framing is right
    framed: bool  # client and server agree where the request ends: a pipelined request must be answered
    expect: frozenset[int] | None = None  # None: any status below 500
    head_only: bool = False  # the body is claimed, never sent: the answer must come without it


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def http_request(
    method: str, path: str, body: bytes, *, version: str = "HTTP/1.1", headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: fuzz", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, request: Request) -> tuple[bytes, bool]:
    """The bytes the server sent back until it closed, and whether it reset the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as sock:
        try:
            sock.sendall(request.raw)
            if not request.head_only:
                if request.framed and request.raw.split(b"\r\n", 1)[0].endswith(b" HTTP/1.1"):
                    sock.sendall(HEALTHZ)  # not after HTTP/1.0: the server closes, and unread bytes reset
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # EPIPE, ECONNRESET, ENOTCONN: the server answered and closed before reading it all
            pass  # its answer is still there to read
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except ConnectionResetError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)


_STATUS_LINE = re.compile(r"HTTP/1\.1 (\d{3}) [^\r\n]*")


def parse_responses(data: bytes, head_first: bool = False) -> list[Response]:
    """The answers in ``data``; with ``head_first`` the first answers a HEAD (it has no body)."""
    responses: list[Response] = []
    at = 0
    while at < len(data):
        end = data.find(b"\r\n\r\n", at)
        assert end >= 0, f"an answer's head is cut short: {data[at : at + 200]!r}"
        status_line, *header_lines = data[at:end].decode("latin-1").split("\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        assert match, f"not a status line: {status_line!r}"
        headers = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            assert colon, f"not a header line: {line!r}"
            headers[name.strip().lower()] = value.strip()
        at = end + 4
        status = int(match[1])
        if status == 100:
            continue
        length = int(headers["content-length"])
        if not responses and head_first:
            length = 0
        body = data[at : at + length]
        assert len(body) == length, f"answer body cut short: {len(body)} of {length} bytes"
        at += length
        responses.append(Response(status, headers, body))
    return responses


def verb_oracle(body: bytes) -> tuple[int, ExtenderArgs | None]:
    """What the server must answer to POST filter or prioritize with ``body``: its own parser decides."""
    try:
        return 200, parse_args(body)
    except ProtocolError:
        return 400, None


def check_result(verb: str, args: ExtenderArgs, body: bytes) -> None:
    result = json.loads(body)
    names = set(args.node_names)
    if verb == "prioritize":
        assert isinstance(result, list)
        hosts = [entry["Host"] for entry in result]
        assert all(set(entry) == {"Host", "Score"} for entry in result)
        # relative to the lowest score: those nodes are left out, every other gets 1..10
        assert all(isinstance(entry["Score"], int) and 1 <= entry["Score"] <= MAX_SCORE for entry in result)
        asked = collections.Counter(args.node_names)
        answered = collections.Counter(hosts)
        assert all(asked[host] >= times for host, times in answered.items()), "only nodes it was asked about"
        return
    assert isinstance(result, dict)
    assert set(result) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    assert isinstance(result["Error"], str) and result["FailedNodes"] == {}
    failed = result["FailedAndUnresolvableNodes"]
    assert isinstance(failed, dict) and all(isinstance(reason, str) and reason for reason in failed.values())
    if args.nodes is None:
        assert result["Nodes"] is None
        passed = result["NodeNames"]
    else:
        assert result["NodeNames"] is None
        items = result["Nodes"]["items"]
        sent = {json.dumps(item, sort_keys=True) for item in args.nodes}
        assert all(json.dumps(item, sort_keys=True) in sent for item in items), "a node the request did not hold"
        passed = [item["metadata"]["name"] for item in items]
    assert isinstance(passed, list)
    assert not set(passed) & set(failed), "a node both passed and failed"
    assert set(passed) | set(failed) == names, "filter must judge every node it was asked about, and no other"


def check(request: Request, data: bytes, reset: bool) -> int:
    """The checks every answer gets; returns the first answer's status."""
    # A HEAD's answer has no body, when the server could read the request line (its version) at all.
    head_first = request.method == "HEAD" and request.raw.split(b"\r\n", 1)[0].endswith((b"/1.0", b"/1.1"))
    responses = parse_responses(data, head_first)
    assert responses, f"no answer at all (connection reset: {reset})"
    for response in responses:
        assert response.status < 500, f"{response.status}: {response.body[:300]!r}"
        if response.status != 200:
            assert response.headers.get("content-type", "").startswith("text/")
            assert response.body or head_first
    assert not any(r.closes for r in responses[:-1]), "an answer after Connection: close"
    first = responses[0]
    if request.framed and request.raw.split(b"\r\n", 1)[0].endswith(b" HTTP/1.1"):
        if first.closes:
            assert len(responses) == 1
        else:
            assert [(r.status, r.body) for r in responses[1:]] == [(200, b"ok\n")], "the pipelined /healthz"
    if request.expect is not None and first.body != b"request body is nested too deeply\n":
        # (how deep a body may nest is the server's recursion limit; Hypothesis raises the test's own)
        assert first.status in request.expect, f"{first.status} not in {sorted(request.expect)}: {first.body[:300]!r}"
    verb = request.path.strip("/")
    if first.status == 200 and request.method == "POST" and verb in VERBS and request.framed:
        status, args = verb_oracle(request.body)
        assert status == 200 and args is not None
        check_result(verb, args, first.body)
    return first.status


# -- generated requests -------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(KNOWN_NODES)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
quantities = st.one_of(
    st.sampled_from(["1Gi", "10Gi", "4Mi", "100Gi", "1.5Gi", "0", "1e3", "-1Gi", "abc", "", "1e40", "8Ei"]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.text(max_size=70),
)
PARAMETER_KEYS = ("size", "volumeType", "vgName", "lvmType", "stripes", "thinPool", "mediaType", "bps", "fsType")
parameter_values = st.one_of(
    st.sampled_from(["LVM", "Device", "thin", "striping", "raid1", "2", "vg0", "vg1", "ssd", "1Gi", "10M"]),
    json_values,
)
volume_names = st.one_of(st.sampled_from(["v0", "v1", "v2"]), st.text(max_size=10))
claim_specs = st.fixed_dictionaries(
    {},
    optional={
        "storageClassName": st.one_of(st.sampled_from(CLASSES), json_scalars),
        "resources": st.fixed_dictionaries({"requests": st.fixed_dictionaries({"storage": quantities})}),
        "dataSource": st.one_of(
            st.fixed_dictionaries(
                {
                    "apiGroup": st.just("snapshot.storage.k8s.io"),
                    "kind": st.just("VolumeSnapshot"),
                    "name": st.sampled_from(["snap-ready", "snap-pending", "snap-gone"]),
                }
            ),
            st.fixed_dictionaries({"kind": st.just("PersistentVolumeClaim"), "name": st.sampled_from(CLAIMS)}),
            json_values,
        ),
        "volumeName": st.one_of(st.sampled_from(["pvc-uid-bound", "pv-gone"]), json_scalars),
    },
)
pod_volumes = st.one_of(
    st.builds(
        lambda name, claim: {"name": name, "persistentVolumeClaim": {"claimName": claim}},
        volume_names,
        st.one_of(st.sampled_from(CLAIMS), json_scalars),
    ),
    st.builds(
        lambda name, spec: {"name": name, "ephemeral": {"volumeClaimTemplate": {"spec": spec}}},
        volume_names,
        claim_specs,
    ),
    st.builds(
        lambda name, driver, attributes: {"name": name, "csi": {"driver": driver, "volumeAttributes": attributes}},
        volume_names,
        st.sampled_from([DRIVER_NAME, DRIVER_NAME, "example.com/other"]),
        st.dictionaries(st.one_of(st.sampled_from(PARAMETER_KEYS), st.text(max_size=8)), parameter_values, max_size=4),
    ),
    st.builds(lambda name: {"name": name, "emptyDir": {}}, volume_names),
)
pods = st.builds(
    lambda name, namespace, uid, volumes: {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes},
    },
    st.one_of(st.sampled_from(["p", "web-0", "db-1"]), st.text(min_size=1, max_size=20)),
    st.sampled_from(["default", "default", "other"]),
    st.one_of(st.sampled_from([f"uid-{n}" for n in range(20)]), st.text(min_size=1, max_size=12)),
    st.lists(pod_volumes, max_size=6),
)


def many_names(count: int, seed: int) -> list[str]:
    """``count`` names, about one in ten a known node, some repeated: a big cluster's request."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [rng.choice(KNOWN_NODES) if rng.random() < 0.1 else f"node-{rng.randrange(count * 2)}" for _ in range(count)]


few_names = st.lists(st.one_of(st.sampled_from(KNOWN_NODES), st.text(max_size=12)), max_size=12)
node_names = st.one_of(  # one draw in four: a big cluster's list
    few_names, few_names, few_names, st.builds(many_names, st.integers(100, 20_000), st.integers(0, 2**32))
)


@st.composite
def valid_args(draw: st.DrawFn) -> dict[str, Json]:
    """An ExtenderArgs the protocol accepts, in either form, with the keys spelled in any case."""
    names = draw(node_names)
    pod_key, names_key, nodes_key = (draw(st.sampled_from(spellings)) for spellings in _SPELLINGS)
    args: dict[str, Json] = {pod_key: draw(pods)}
    if draw(st.integers(0, 4)) == 0:
        items = [{"metadata": {"name": name, "labels": {"a": "b"}}, "status": {}} for name in names]
        args[nodes_key] = {"apiVersion": "v1", "kind": "NodeList", "items": items}
    else:
        args[nodes_key] = None
        args[names_key] = names
    return args


_SPELLINGS = (("Pod", "Pod", "pod", "POD"), ("NodeNames", "NodeNames", "nodenames"), ("Nodes", "Nodes", "nodes"))


def encode_json(value: Json, style: int) -> bytes:
    """As Go writes it (compact), as Python does, indented, or not ASCII-only."""
    if style == 0:
        return json.dumps(value, separators=(",", ":")).encode()
    if style == 1:
        return json.dumps(value).encode()
    if style == 2:
        return json.dumps(value, indent=1).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def all_paths(value: Json, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from all_paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:50]):
            yield from all_paths(inner, (*path, index))


def replace_at(value: Json, path: tuple[Any, ...], new: Json, delete: bool = False) -> None:
    for step in path[:-1]:
        value = value[step]
    if delete:
        del value[path[-1]]
    else:
        value[path[-1]] = new


PLACEHOLDER = "\x00fuzz-placeholder\x00"


def _nested(depth: int, opening: bytes, middle: bytes, closing: bytes) -> bytes:
    return opening * depth + middle + closing * depth


# JSON (or nearly) that is hard on a decoder: deep nesting, long numbers, long strings, NaN.
_FRAGMENTS = (
    st.builds(_nested, st.integers(1, 200_000), st.just(b"["), st.just(b""), st.just(b"]")),
    st.builds(_nested, st.integers(1, 100_000), st.just(b'{"a":'), st.just(b"1"), st.just(b"}")),
    st.builds(lambda sign, n: sign + b"9" * n, st.sampled_from([b"", b"-"]), st.integers(1, 50_000)),
    st.builds(lambda n, tail: b"1" * n + tail, st.integers(1, 50_000), st.sampled_from([b".5", b"e999", b"e-999"])),
    st.builds(lambda n: b'"' + b"x" * n + b'"', st.integers(0, 1 << 20)),
    st.sampled_from([b'"\\ud800"', b'"\\udfff x"', b'"\\u0000"', b'"\xed\xa0\x80"']),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nul", b"tru", b"1.", b"01", b"+1"]),
)
pathological_fragments = st.one_of(*_FRAGMENTS)


@st.composite
def verb_requests(draw: st.DrawFn) -> Request:
    """POST /filter or /prioritize with a valid, mutated, pathological, garbage or huge body."""
    kind = draw(st.sampled_from(["valid", "mutated", "pathological", "json", "bytes", "huge"]))
    args = draw(valid_args())
    style = draw(st.integers(0, 3))
    if kind == "mutated":
        path = draw(st.sampled_from(list(all_paths(args))))
        replace_at(args, path, draw(json_values), delete=draw(st.booleans()))
    if kind == "pathological":
        path = draw(st.sampled_from(list(all_paths(args))))
        replace_at(args, path, PLACEHOLDER)
        placeholder = json.dumps(PLACEHOLDER).encode()
        body = encode_json(args, style).replace(placeholder, draw(pathological_fragments), 1)
    elif kind == "json":
        body = encode_json(draw(json_values), style)
    elif kind == "bytes":
        body = draw(garbled(encode_json(args, style)))
    elif kind == "huge":
        body = draw(huge_bodies(args))
    else:
        body = encode_json(args, style)
    headers: list[tuple[str, str]] = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if draw(st.integers(0, 9)) == 0:
        headers.append(("Expect", "100-continue"))
    version = "HTTP/1.0" if draw(st.integers(0, 9)) == 0 else "HTTP/1.1"
    path = "/" + draw(st.sampled_from(VERBS))
    raw = http_request("POST", path, body, version=version, headers=tuple(headers))
    expect = frozenset({verb_oracle(body)[0]})
    return Request(kind, "POST", path, raw, body, framed=True, expect=expect)


@st.composite
def garbled(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` cut short, with bytes changed or inserted, in another encoding, or any bytes at all."""
    at = draw(st.integers(0, len(body)))
    chunk = draw(st.binary(min_size=1, max_size=8))
    ways = {
        "binary": lambda: draw(st.binary(max_size=2000)),
        "utf16": lambda: body.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass"),
        "bom": lambda: b"\xef\xbb\xbf" + body,
        "cut": lambda: body[:at],
        "trailing": lambda: body + chunk,
        "flip": lambda: body[:at] + chunk + body[at + len(chunk) :],
        "insert": lambda: body[:at] + chunk + body[at:],
    }
    return ways[draw(st.sampled_from(sorted(ways)))]()


@st.composite
def huge_bodies(draw: st.DrawFn, args: dict[str, Json]) -> bytes:
    """Up to HUGE_BODY_BYTES: whitespace around a valid body, or a long annotation in its pod."""
    size = draw(st.integers(1 << 20, HUGE_BODY_BYTES))
    if draw(st.booleans()):
        body = encode_json(args, 0)
        before = draw(st.integers(0, size))
        return b" " * before + body + b"\n" * (size - before)
    pod = next(value for key, value in args.items() if key.lower() == "pod")
    pod["metadata"]["annotations"] = {"fuzz": "x" * size}
    return encode_json(args, 0)


@st.composite
def method_requests(draw: st.DrawFn) -> Request:
    """Any method on any path, with or without a body, in HTTP/1.0, 1.1 or something else."""
    method = draw(
        st.one_of(
            st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get"]),
            st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
        )
    )
    path = draw(
        st.one_of(
            st.sampled_from(
                ["/filter", "/prioritize", "/healthz", "/metrics", "/", "/bind", "//filter/", "/filter?x=1", "*"]
            ),
            st.text(alphabet=string.ascii_letters + string.digits + string.punctuation, max_size=40).map("/".__add__),
        )
    )
    body = draw(st.one_of(st.just(b""), st.binary(max_size=300), valid_args().map(lambda a: encode_json(a, 0))))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x"]))
    headers = (("Content-Length", str(len(body))),) if body or draw(st.booleans()) else ()
    raw = http_request(method, path, body, version=version, headers=headers)
    verb = path.strip("/")
    expect: frozenset[int] | None
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        expect = frozenset({400})
    elif method == "GET":
        expect = frozenset({200} if path in ("/healthz", "/metrics") else {404})
    elif method == "POST" and verb in VERBS:
        expect = frozenset({verb_oracle(body)[0]}) if headers else frozenset({400})
    elif method == "POST":
        expect = frozenset({404})
    else:
        expect = frozenset({405})
    framed = version in ("HTTP/1.0", "HTTP/1.1") and (bool(headers) or method != "POST" or verb not in VERBS)
    return Request("method", method, path, raw, body, framed=framed, expect=expect)


@st.composite
def framing_requests(draw: st.DrawFn) -> Request:
    """POST with a Content-Length that is missing, wrong, repeated, or beyond the limit."""
    body = encode_json(draw(valid_args()), 0) if draw(st.booleans()) else draw(st.binary(max_size=500))
    how = draw(
        st.sampled_from(
            ["missing", "words", "negative", "signs", "short", "long", "twice", "twice-differently", "chunked", "over"]
        )
    )
    path = "/" + draw(st.sampled_from(VERBS))
    framed = False
    expect: frozenset[int] | None = frozenset({400})
    length: list[str] = [str(len(body))]
    extra: list[tuple[str, str]] = []
    if how == "missing":
        length = []
    elif how == "words":
        length = [draw(st.sampled_from(["", "abc", "1.5", "0x10", "1e3", "1 2"]))]
    elif how == "negative":
        length = [str(-draw(st.integers(1, 2**70)))]
    elif how == "signs":
        length = [draw(st.sampled_from(["+", " ", "0"])) + str(len(body))]
        framed, expect = True, frozenset({verb_oracle(body)[0]})
    elif how == "short":
        length = [str(draw(st.integers(0, max(len(body) - 1, 0))))]
        expect = None
    elif how == "long":
        length = [str(len(body) + draw(st.integers(1, 10_000)))]
    elif how == "twice":
        length = length * 2
        framed, expect = True, frozenset({verb_oracle(body)[0]})
    elif how == "twice-differently":
        length = [str(len(body)), str(len(body) + 1)]
    elif how == "chunked":
        length = []
        extra = [("Transfer-Encoding", "chunked")]
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    else:
        length = [str(MAX_BODY_BYTES + draw(st.integers(1, 2**40)))]
        expect = frozenset({400, 413})
    headers = tuple(("Content-Length", value) for value in length) + tuple(extra)
    raw = http_request("POST", path, b"" if how == "over" else body, headers=headers)
    return Request(f"length-{how}", "POST", path, raw, body, framed=framed, expect=expect, head_only=how == "over")


requests = st.one_of(verb_requests(), verb_requests(), method_requests(), framing_requests())


@st.composite
def filter_then_prioritize(draw: st.DrawFn) -> tuple[dict[str, Json], Request]:
    """A filter as kube-scheduler sends it; the test sends prioritize for what it passed."""
    args = draw(valid_args())
    args = {"Pod": next(v for k, v in args.items() if k.lower() == "pod"), "Nodes": None, "NodeNames": []}
    args["NodeNames"] = draw(node_names)
    body = encode_json(args, 0)
    raw = http_request("POST", "/filter", body, headers=(("Content-Length", str(len(body))),))
    return args, Request("sequence", "POST", "/filter", raw, body, framed=True, expect=frozenset({200}))


# -- the test --------------------------------------------------------------------------------------------


def warm_up_requests() -> list[Request]:
    """One of each heavy kind, so that the memory measured after them is the server at work."""
    pod = {
        "metadata": {"name": "w", "uid": "uid-w"},
        "spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "data"}}]},
    }
    bodies = [
        encode_json({"Pod": pod, "NodeNames": list(KNOWN_NODES)}, 0),
        encode_json({"Pod": pod, "NodeNames": many_names(20_000, 1)}, 0),
        b" " * HUGE_BODY_BYTES + encode_json({"Pod": pod, "NodeNames": ["big"]}, 0),
        b'{"Pod":' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        b'{"Pod":' + b"9" * 50_000 + b"}",
        encode_json({"Pod": pod, "Nodes": {"items": [{"metadata": {"name": n}} for n in many_names(5000, 2)]}}, 0),
    ]
    made = []
    for body in bodies:
        for verb in VERBS:
            raw = http_request("POST", f"/{verb}", body, headers=(("Content-Length", str(len(body))),))
            made.append(Request("warm-up", "POST", f"/{verb}", raw, body, framed=True))
    return made


def test_generated_requests_get_valid_answers_or_4xx_and_memory_stays_bounded(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server.stderr")
    histogram: collections.Counter[tuple[str, int]] = collections.Counter()
    try:
        for request in warm_up_requests() * 3:
            check(request, *exchange(server.port, request))
        before = server.stats()
        examples: list[None] = []
        samples: list[int] = []  # RSS in KiB every tenth of the run
        started = time.monotonic()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            # CI's run is the same examples every time (a gate must not fail by chance on code it did
            # not change); a longer run, asked for with LOCALCSI_FUZZ_EXAMPLES, explores anew.
            derandomize="LOCALCSI_FUZZ_EXAMPLES" not in os.environ,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests, sequence=st.one_of(st.none(), st.none(), st.none(), filter_then_prioritize()))
        def fuzz(request: Request, sequence: tuple[dict[str, Json], Request] | None) -> None:
            examples.append(None)
            played.append((request, copy.deepcopy(sequence)))
            if len(examples) % max(EXAMPLES // 10, 1) == 0:
                samples.append(server.stats()["rss_kib"])
            play(request, sequence, histogram)

        def play(
            request: Request, sequence: tuple[dict[str, Json], Request] | None, counts: collections.Counter[Any]
        ) -> None:
            counts[request.kind, check(request, *exchange(server.port, request))] += 1
            if sequence is None:
                return
            args, first = sequence
            data, reset = exchange(server.port, first)
            counts[first.kind, check(first, data, reset)] += 1
            args["NodeNames"] = json.loads(parse_responses(data)[0].body)["NodeNames"]
            body = encode_json(args, 0)
            raw = http_request("POST", "/prioritize", body, headers=(("Content-Length", str(len(body))),))
            second = Request("sequence", "POST", "/prioritize", raw, body, framed=True, expect=frozenset({200}))
            counts[second.kind, check(second, *exchange(server.port, second))] += 1

        played: list[tuple[Request, tuple[dict[str, Json], Request] | None]] = []
        fuzz()
        seconds = time.monotonic() - started
        after = server.stats()
        for request, sequence in played:
            play(request, sequence, collections.Counter())
        settled = server.stats()
        for request, sequence in played:
            play(request, sequence, collections.Counter())
        replayed = server.stats()
        assert exchange(server.port, Request("", "GET", "/healthz", HEALTHZ, b"", framed=False))[0].endswith(b"ok\n")
    finally:
        server.stop()
    errors = (tmp_path / "server.stderr").read_text(errors="replace")
    assert "Traceback" not in errors, errors[-5000:]
    assert server.process.returncode == 0
    statuses: collections.Counter[int] = collections.Counter()
    for (_, status), count in histogram.items():
        statuses[status] += count
    print(
        f"\nextender fuzz: {EXAMPLES} examples, {sum(histogram.values())} requests in {seconds:.1f} s;"
        f" statuses {dict(sorted(statuses.items()))};"
        f" by kind {dict(sorted(histogram.items()))};"
        f" RSS {before['rss_kib']} -> {after['rss_kib']} KiB (warm-up peak {before['hwm_kib']},"
        f" run peak {after['hwm_kib']}, by tenths {samples});"
        f" allocated blocks {before['blocks']} -> {after['blocks']}; reserved pods {after['reserved_pods']};"
        f" replayed twice: RSS {settled['rss_kib']} then {replayed['rss_kib']} KiB,"
        f" allocated blocks {settled['blocks']} then {replayed['blocks']}"
    )
    assert max(after["rss_kib"], replayed["rss_kib"]) < before["hwm_kib"] + RSS_SLACK_KIB, "RSS grew past fragmentation"
    assert after["blocks"] - before["blocks"] < BLOCKS_GROWTH
    assert replayed["blocks"] - settled["blocks"] < BLOCKS_GROWTH
