#!/usr/bin/env python3
"""localcsi's extender HTTP server in front of an extender that does nothing: filter passes every
node, prioritize scores every node 0. bench_scheduler.py runs it to measure what the server itself
(Python, HTTP, JSON both ways) costs kube-scheduler, apart from the extender's work.

    python benchmarks/noop_extender.py HOST:PORT
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from localcsi.core.scheduling_score import MAX_SCORE
from localcsi.extender.main import split_listen
from localcsi.extender.server import ExtenderServer
from localcsi.extender.service import Extender, FilterOutcome, Priorities


class NoopExtender(Extender):
    def filter(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> FilterOutcome:
        return FilterOutcome(passed=list(nodes))

    def prioritize(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> Priorities:
        return Priorities([list(nodes)] + [[] for _ in range(MAX_SCORE)])


def main() -> int:
    server = ExtenderServer(split_listen(sys.argv[1]), NoopExtender())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
