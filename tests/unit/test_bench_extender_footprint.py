"""benchmarks/bench_extender_footprint.py without valgrind: its reading of callgrind's totals, and the
requests its child process runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from localcsi.extender.service import Extender
from localcsi.testing.install import project_root

pytestmark = pytest.mark.unit

CALLGRIND_OUT = """# callgrind format
version: 1
creator: callgrind-3.19.0
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
0 5 1 1 0 0 0 0 0 0
totals: 1200 300 200 40 30 20 12 9 3
"""


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(project_root() / "benchmarks"))  # its imports of the other benchmarks
    return importlib.import_module("bench_extender_footprint")


def test_the_totals_give_instructions_and_the_code_and_data_lines_fetched(bench: ModuleType) -> None:
    footprint = bench.read_totals(CALLGRIND_OUT)
    assert footprint == bench.Footprint(instructions=1200, code_lines=12, data_lines=12)  # DLmr + DLmw
    assert footprint.per(3) == bench.Footprint(400, 4, 4)
    # callgrind writes "summary:" instead when it had no totals line to write
    assert bench.read_totals(CALLGRIND_OUT.replace("totals:", "summary:")) == footprint


@pytest.mark.parametrize(
    "text",
    [
        CALLGRIND_OUT.replace("totals: 1200 300 200 40 30 20 12 9 3\n", ""),
        CALLGRIND_OUT.replace("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw", "events: Ir"),  # no --cache-sim
    ],
)
def test_output_without_cache_totals_is_refused(bench: ModuleType, text: str) -> None:
    with pytest.raises(ValueError, match="cache-sim"):
        bench.read_totals(text)


def test_counted_runs_the_request_once_and_returns_its_answer(bench: ModuleType) -> None:
    calls: list[int] = []

    def request() -> str:
        calls.append(1)
        return "answer"

    assert bench.counted(request) == "answer"
    assert calls == [1]


@pytest.mark.parametrize("http", [False, True])
@pytest.mark.parametrize("kind", ["localcsi", "noop"])
def test_the_child_runs_every_request_of_every_pod(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, kind: str, http: bool
) -> None:
    counted: list[object] = []
    real = bench.counted

    def counting(request: Callable[[], object]) -> object:
        counted.append(request)
        return real(request)

    monkeypatch.setattr(bench, "counted", counting)
    bench.run_requests(kind, nodes=3, pods=4, evict_mib=0, http=http)
    assert len(counted) == 4 + 3 + 4  # a filter and a prioritize per pod, a commit for each but the last


class Recorded:
    """An exchange that keeps what each request's answer said."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.said: list[tuple[str, list[str]]] = []

    def prepare(self, verb: str, body: bytes) -> Callable[[], object]:
        return self.inner.prepare(verb, body)  # type: ignore[no-any-return]

    def nodes(self, verb: str, answer: object) -> list[str]:
        nodes: list[str] = self.inner.nodes(verb, answer)
        self.said.append((verb, nodes))
        return nodes


def test_over_http_the_server_answers_as_the_direct_calls_do(bench: ModuleType) -> None:
    """The same pods through the HTTP server and straight to the extender get the same answers: the server
    really served each request (anything but a 200 raises), and prioritize really ranked."""
    cold = importlib.import_module("bench_extender_cold")  # where replay and the direct calls are
    names = [f"node-{index}" for index in range(4)]
    said: dict[str, list[tuple[str, list[str]]]] = {}
    for way in ("direct", "http"):
        extender = bench.scheduling_cluster(Extender(), names, 10)  # 10 GiB nodes, 1 GiB claims
        inner = bench.ServedOverLoopback(extender) if way == "http" else cold.DirectCalls(extender)
        recorded = Recorded(inner)
        try:
            cold.replay(extender, names, 6, lambda: None, lambda request: request(), exchange=recorded)
        finally:
            if way == "http":
                inner.close()
        said[way] = recorded.said
    assert said["direct"] == said["http"]
    assert len(said["http"]) == 12
    # binpack: once a pod is committed, its node is the fullest and the only best one
    assert ("prioritize", ["node-0"]) in said["http"]
