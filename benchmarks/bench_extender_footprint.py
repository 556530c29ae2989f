#!/usr/bin/env python3
"""The extender's instructions and cold cache footprint per pod, counted by valgrind's callgrind: figures
that move by about 1 % from run to run, where bench_scheduler's ratios move by a tenth (docs/extender.md,
"Footprint"):

    python benchmarks/bench_extender_footprint.py [--nodes 100] [--pods 60] [--evict-mib 4] [--http]

The requests are bench_extender_cold.py's (filter, the last pod's commit event, prioritize; parse and
encode included; with ``--http`` each request goes through the extender's HTTP server on a loopback
connection, so the serving and the metrics count too), once for localcsi's extender and once for the
no-op (benchmarks/noop_extender.py), each in its own process under callgrind with a simulated last-level
cache of 2 MiB (one core's L2 on the benchmark machine). Only the requests are counted: each runs inside
``functools.reduce``, where callgrind's collection is switched on (``--toggle-collect``). Before each
request, outside the count, a buffer of ``--evict-mib`` is written, as the other processes of a busy
machine do; every cache line the request then touches misses the simulated last level once, so its
misses are the request's footprint: the lines of code and of data it needs.
Prints per pod, for both and for their ratio:

- instructions executed;
- code lines and data lines (of 64 bytes) the request had to fetch from memory.

Takes about a minute (callgrind runs Python some fifty times slower). Needs valgrind
(`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TypeVar

from bench_extender_cold import Evictor, Exchange, replay, scheduling_cluster  # benchmarks/, this directory
from noop_extender import NoopExtender

from localcsi.extender.main import settle_garbage_collector
from localcsi.extender.server import ExtenderServer
from localcsi.extender.service import Extender

T = TypeVar("T")
LAST_LEVEL = "2097152,16,64"  # bytes, ways, line: the benchmark machine's L2 per core
TOGGLE = "functools_reduce"  # the C function of functools.reduce, inside which callgrind counts
KINDS = ("localcsi", "noop")


@dataclass(frozen=True)
class Footprint:
    instructions: float
    code_lines: float
    data_lines: float

    def per(self, pods: int) -> Footprint:
        return Footprint(self.instructions / pods, self.code_lines / pods, self.data_lines / pods)


def counted(request: Callable[[], T]) -> T:
    """Run ``request`` where callgrind counts: inside functools.reduce, which nothing else here calls."""
    answers: list[T] = []
    functools.reduce(lambda _, call: answers.append(call()), [request], None)
    return answers[0]


def read_totals(text: str) -> Footprint:
    """Instructions and last-level misses (code, data read and data written) from a callgrind output file."""
    events: list[str] = []
    totals: list[int] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("totals:", "summary:")):
            totals = [int(value) for value in line.split()[1:]]
    if not events or len(totals) != len(events):
        raise ValueError("no events and totals in the callgrind output (was --cache-sim=yes given?)")
    value = dict(zip(events, totals, strict=True))
    return Footprint(value["Ir"], value["ILmr"], value["DLmr"] + value["DLmw"])


class ServedOverLoopback:
    """Requests through the extender's HTTP server (``localcsi.extender.server``), on a TCP connection over
    loopback to its listening socket, served in this thread: each request is written as kube-scheduler's
    Go client writes it (not counted), and what is counted is the handler's ``handle_one_request``, which
    reads the request line, the headers and the body, serves the verb, counts it in the metrics and
    writes the answer."""

    def __init__(self, extender: Extender) -> None:
        self.server = ExtenderServer(("127.0.0.1", 0), extender)
        self.client = socket.create_connection(("127.0.0.1", self.server.port))
        served, address = self.server.get_request()
        handler_class = self.server.RequestHandlerClass
        assert isinstance(handler_class, type) and issubclass(handler_class, BaseHTTPRequestHandler)
        handler = handler_class.__new__(handler_class)  # set up by hand: its __init__ would serve until closed
        handler.request, handler.client_address, handler.server = served, address, self.server
        handler.setup()
        self.handler = handler
        self.answers = self.client.makefile("rb")

    def prepare(self, verb: str, body: bytes) -> Callable[[], object]:
        head = (
            f"POST /{verb} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
        )
        self.client.sendall(head.encode() + body)
        return self.handler.handle_one_request

    def nodes(self, verb: str, answer: object) -> list[str]:
        status = self.answers.readline()
        if not status.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"{verb} answered {status!r}")
        length = 0
        while (line := self.answers.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        decoded = json.loads(self.answers.read(length))
        if verb == "filter":
            return list(decoded["NodeNames"] or [])
        best = max((entry["Score"] for entry in decoded), default=None)  # [] when every node scores alike
        return [entry["Host"] for entry in decoded if entry["Score"] == best]

    def close(self) -> None:
        self.answers.close()
        self.client.close()
        self.handler.finish()
        self.server.server_close()


def run_requests(kind: str, nodes: int, pods: int, evict_mib: int, http: bool = False) -> None:
    """The child side: the requests of ``pods`` pods, counted; with ``http``, through the HTTP server."""
    names = [f"node-{index:05d}" for index in range(nodes)]
    extender = scheduling_cluster(Extender() if kind == "localcsi" else NoopExtender(), names, 100_000)
    exchange: Exchange | None = ServedOverLoopback(extender) if http else None
    settle_garbage_collector()
    try:
        replay(extender, names, pods, Evictor(evict_mib), counted, exchange=exchange)
    finally:
        if isinstance(exchange, ServedOverLoopback):
            exchange.close()


def measure(kind: str, args: argparse.Namespace, scratch: Path) -> Footprint:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("bench_extender_footprint needs valgrind: apt-get install valgrind")
    out = scratch / f"callgrind.{kind}.out"
    argv = [
        valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--collect-atstart=no",
        f"--toggle-collect={TOGGLE}",
        "--cache-sim=yes",
        f"--LL={LAST_LEVEL}",
        sys.executable,
        __file__,
        "--child",
        kind,
        f"--nodes={args.nodes}",
        f"--pods={args.pods}",
        f"--evict-mib={args.evict_mib}",
        *(["--http"] if args.http else []),
    ]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return read_totals(out.read_text()).per(args.pods)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=60, help="pods, each filtered, committed and prioritized")
    parser.add_argument("--evict-mib", type=int, default=4, help="buffer written before each request")
    parser.add_argument(
        "--http",
        action="store_true",
        help="each request through the extender's HTTP server on a loopback connection (serving and metrics counted)",
    )
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)  # the process callgrind runs
    args = parser.parse_args()
    if args.child:
        run_requests(args.child, args.nodes, args.pods, args.evict_mib, args.http)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        found = {kind: measure(kind, args, Path(scratch)) for kind in KINDS}
    served = ", through the HTTP server" if args.http else ""
    print(f"nodes={args.nodes}, pods={args.pods}, {args.evict_mib} MiB written before each request{served}; per pod:")
    print(f"{'':10s} {'instructions':>13s} {'code lines':>11s} {'data lines':>11s}")
    for kind, footprint in found.items():
        print(f"{kind:10s} {footprint.instructions:13,.0f} {footprint.code_lines:11,.0f} {footprint.data_lines:11,.0f}")
    ours, noop = found["localcsi"], found["noop"]
    ratios = (
        ours.instructions / noop.instructions,
        ours.code_lines / noop.code_lines,
        ours.data_lines / noop.data_lines,
    )
    print(f"{'ratio':10s} {ratios[0]:13.2f} {ratios[1]:11.2f} {ratios[2]:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
