"""benchmarks/bench_extender_cold.py on a small cluster: it drives the extender as kube-scheduler does."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from localcsi.extender.service import Extender
from localcsi.testing.install import project_root

pytestmark = pytest.mark.unit


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(project_root() / "benchmarks"))  # its imports of bench_extender, noop_extender
    return importlib.import_module("bench_extender_cold")


def test_every_pod_is_filtered_prioritized_and_committed_one_pod_behind(bench: ModuleType) -> None:
    names = [f"node-{index}" for index in range(5)]
    extender = bench.scheduling_cluster(Extender(), names, 100)
    filters, commits, prioritizes = bench.cpu_per_pod(extender, names, 4, bench.Evictor(0))
    assert len(filters) == len(prioritizes) == 4
    assert len(commits) == 3  # the first pod's filter has no pod before it to commit
    assert all(spent > 0 for spent in filters + commits + prioritizes)
    # the first three pods were committed (each after the next pod's filter); the last one still holds wide
    assert extender.ready_summary()["reserved_pods"] == 1
    assert extender.ledger.pod_holds_wide("pod-3-uid")


def test_the_evictor_writes_every_cache_line_of_its_buffer(bench: ModuleType) -> None:
    evict = bench.Evictor(1)
    evict()
    evict()
    written = evict._buffer[:: bench.CACHE_LINE // 8]
    assert written.size == (1 << 20) // bench.CACHE_LINE and (written == 2).all()
    assert (evict._buffer == 0).sum() == evict._buffer.size - written.size
