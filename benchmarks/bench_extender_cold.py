#!/usr/bin/env python3
"""The extender's CPU per pod when each request finds the CPU's caches cold, as it does on a machine
where kube-scheduler, the apiserver and etcd run between two requests (docs/extender.md, "Cold caches"):

    python benchmarks/bench_extender_cold.py [--nodes 100] [--vg-gib 100000] [--pods 300] [--evict-mib 64]
                                             [--rounds 3]

The cluster is like bench_scheduler.py's: nodes of one VG each, all alike. In one process and without HTTP,
requests encoded as kube-scheduler's Go encoder writes them (compact, NodeNames last) go through what
the server does with them: ``parse_args``, filter and ``encode_filter_result``; ``parse_args``,
prioritize and ``encode_ranks``. The same pods go to localcsi's extender and to the no-op one
(benchmarks/noop_extender.py), each in its own cluster view. A pod's PVC gets selected-node between the
next pod's filter and prioritize, as kube-scheduler's binding cycle runs behind its scheduling cycle,
and that event is applied as the informer would. Each request and the event are timed with the thread's
CPU clock; before each one, outside the timed part, a buffer of ``--evict-mib`` is written, which evicts
the caches as the other processes do (``--evict-mib 0``: warm, as in a loop that has the CPU to itself).
Rounds alternate warm and cold.

Prints, per round, the mean CPU per pod of filter, of the commit event and of prioritize (parse and
encode included) for localcsi's extender and for the no-op (which keeps the same view of the cluster),
and the difference per pod: localcsi's own work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np
from bench_extender import claim, go_json, pod, storage_report  # benchmarks/, this directory
from noop_extender import NoopExtender

from localcsi import DRIVER_NAME
from localcsi.core.sizes import GiB
from localcsi.extender.cache import NODE_LOCAL_STORAGES, PERSISTENT_VOLUME_CLAIMS, STORAGE_CLASSES
from localcsi.extender.main import settle_garbage_collector
from localcsi.extender.objects import SELECTED_NODE_ANNOTATION as ANNOTATION
from localcsi.extender.protocol import RequestCache, encode_filter_result, encode_ranks, parse_args
from localcsi.extender.service import Extender, FilterOutcome, Priorities

MIB = 1 << 20
VG = "localcsi-pool-0"
CACHE_LINE = 64


class Evictor:
    """Writes one word in every cache line of a buffer: what the CPU held before is gone."""

    def __init__(self, mib: int) -> None:
        self._buffer = np.zeros(mib * MIB // 8, dtype=np.int64)

    def __call__(self) -> None:
        if self._buffer.size:
            self._buffer[:: CACHE_LINE // 8] += 1


def scheduling_cluster(extender: Extender, names: list[str], vg_gib: int) -> Extender:
    extender.apply(STORAGE_CLASSES, "ADDED", {"metadata": {"name": "localcsi"}, "provisioner": DRIVER_NAME})
    for name in names:
        extender.apply(NODE_LOCAL_STORAGES, "ADDED", storage_report(name, [(VG, vg_gib * GiB)]))
    return extender


T = TypeVar("T")
Run = Callable[[Callable[[], T]], T]  # runs one request (or event) and returns what it returned


def _extender_args(the_pod: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {"Pod": the_pod, "Nodes": None, "NodeNames": names}


class Exchange(Protocol):
    """How a request reaches the extender: ``prepare`` (not measured) gives the call that serves it (the
    measured part), and ``nodes`` reads the call's answer (not measured): for filter the nodes that
    passed, for prioritize those with the best score (none when every node scores alike, as the answer
    on the wire says)."""

    def prepare(self, verb: str, body: bytes) -> Callable[[], object]: ...

    def nodes(self, verb: str, answer: object) -> list[str]: ...


class DirectCalls:
    """What the server does with a request without HTTP: ``parse_args``, the verb, and the answer's encoding."""

    def __init__(self, extender: Extender) -> None:
        self.extender = extender
        self.cache = RequestCache()

    def prepare(self, verb: str, body: bytes) -> Callable[[], object]:
        return partial(self._filter if verb == "filter" else self._prioritize, body)

    def nodes(self, verb: str, answer: object) -> list[str]:
        if isinstance(answer, FilterOutcome):
            return answer.passed
        assert isinstance(answer, Priorities)
        scored = [nodes for nodes in answer.ranks if nodes]
        return scored[-1] if len(scored) > 1 else []

    def _filter(self, body: bytes) -> FilterOutcome:
        args = parse_args(body, self.cache)
        outcome = self.extender.filter(args.pod, args.node_names)
        encode_filter_result(args, outcome.passed, outcome.failed, names=self.cache)
        return outcome

    def _prioritize(self, body: bytes) -> Priorities:
        args = parse_args(body, self.cache)
        priorities = self.extender.prioritize(args.pod, args.node_names)
        encode_ranks(priorities.ranks, args.plain_names)
        return priorities


def replay(
    extender: Extender,
    names: list[str],
    pods: int,
    evict: Callable[[], None],
    run: Run[Any],
    *,
    exchange: Exchange | None = None,
) -> None:
    """kube-scheduler's calls for ``pods`` pods, each request and commit event through ``run``, with
    ``evict()`` before each and outside it: filter (parse and encode included), the last pod's commit
    (its PVC's selected-node, as the informer delivers it) and prioritize. The requests go through
    ``exchange``, ``DirectCalls`` unless given."""
    exchange = exchange or DirectCalls(extender)
    behind: tuple[dict[str, Any], str] | None = None  # the last pod's claim and the node it went to
    for number in range(pods):
        name = f"pod-{number}"
        the_claim = claim(name, 0)
        extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", the_claim)
        the_pod = pod(name, [the_claim])
        request = exchange.prepare("filter", go_json(_extender_args(the_pod, names)))  # kube-scheduler's work
        evict()
        passed = exchange.nodes("filter", run(request))
        if behind is not None:  # the binding cycle, one pod behind: selected-node on the last pod's claim
            last_claim, node = behind
            committed = {**last_claim, "metadata": {**last_claim["metadata"], "annotations": {ANNOTATION: node}}}
            evict()
            run(partial(extender.apply, PERSISTENT_VOLUME_CLAIMS, "MODIFIED", committed))
        request = exchange.prepare("prioritize", go_json(_extender_args(the_pod, passed)))
        evict()
        best = exchange.nodes("prioritize", run(request)) or passed
        behind = (the_claim, best[0]) if best else None


def cpu_per_pod(
    extender: Extender, names: list[str], pods: int, evict: Callable[[], None]
) -> tuple[list[float], list[float], list[float]]:
    """Thread CPU microseconds per pod of filter, of the last pod's commit (the informer's event) and of
    prioritize, parse and encode included."""
    spent: list[float] = []

    def timed(request: Callable[[], T]) -> T:
        started = time.thread_time_ns()
        answer = request()
        spent.append((time.thread_time_ns() - started) / 1000)
        return answer

    replay(extender, names, pods, evict, timed)
    # in order: filter, prioritize for the first pod; then filter, commit, prioritize for each other
    filters = [spent[0], *spent[2::3]]
    commits = spent[3::3]
    prioritizes = [spent[1], *spent[4::3]]
    return filters, commits, prioritizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=300, help="pods per round and side")
    parser.add_argument("--vg-gib", type=int, default=100_000, help="each node's one VG, free (as bench_scheduler)")
    parser.add_argument("--evict-mib", type=int, default=64, help="buffer written before each cold request")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, warm and cold alternating")
    args = parser.parse_args()
    names = [f"node-{index:05d}" for index in range(args.nodes)]
    evictors = {"warm": Evictor(0), "cold": Evictor(args.evict_mib)}
    print(f"nodes={args.nodes}, pods/round={args.pods}, cold: {args.evict_mib} MiB written before each request")
    print("round  caches   localcsi: filter + commit + prioritize = pod    no-op: the same             own work")
    for round_index in range(args.rounds):
        for temperature, evict in evictors.items():
            per_pod = {}
            line = f"{round_index:>5}  {temperature:>6}"
            for extender in (Extender(), NoopExtender()):
                scheduling_cluster(extender, names, args.vg_gib)
                settle_garbage_collector()  # as `localcsi extender` does once its informers have synced
                means = [statistics.mean(spent) for spent in cpu_per_pod(extender, names, args.pods, evict)]
                per_pod[type(extender)] = sum(means)
                line += "   " + " + ".join(f"{mean:4.0f}" for mean in means) + f" = {sum(means):4.0f} us"
            print(f"{line}   {per_pod[Extender] - per_pod[NoopExtender]:6.0f} us", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
