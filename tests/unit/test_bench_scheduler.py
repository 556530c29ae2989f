"""The pure part of benchmarks/bench_scheduler.py (bench_scheduler_stats.py and the workload's shape). The
benchmark itself needs a real apiserver and kube-scheduler."""

from __future__ import annotations

import importlib.util
import sys
import time
from types import ModuleType

import pytest

from localcsi.testing.install import project_root
from localcsi.webhook import CAPACITY_RESOURCE


def load_benchmark_module(name: str) -> ModuleType:
    """benchmarks/<name>.py as the module ``name``, registered first: its dataclasses look their module up."""
    spec = importlib.util.spec_from_file_location(name, project_root() / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault(name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


STATS = load_benchmark_module("bench_scheduler_stats")
WORKLOAD = load_benchmark_module("bench_scheduler_workload")

pytestmark = pytest.mark.unit


def test_ratios_are_taken_round_by_round() -> None:
    rates = {"extender": [100.0, 90.0, 50.0], "baseline": [100.0, 100.0, 100.0, 100.0]}
    summary = STATS.round_ratios(rates, "extender", "baseline")
    assert summary.ratios == (1.0, 0.9, 0.5)  # a fourth baseline round has no partner
    assert summary.mean == pytest.approx(0.8)
    assert (summary.low, summary.high, summary.spread) == (0.5, 1.0, 0.25)
    assert summary.meets(0.8) and not summary.meets(0.81)
    with pytest.raises(ValueError, match="no round"):
        STATS.round_ratios({"a": [], "b": [1.0]}, "a", "b")


def test_every_other_round_runs_the_sides_backwards() -> None:
    assert STATS.side_order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert STATS.side_order(["a", "b", "c"], 1) == ["c", "b", "a"]


def test_described_with_spread_rounds_and_goal() -> None:
    comparison = STATS.Comparison("mixed", "x", "y", 0.95)
    text = STATS.describe(comparison, STATS.RatioSummary((0.9, 1.1)))
    assert text == "mixed: 1.00 ± 0.10 (rounds 0.90, 1.10), goal >= 0.95 met"


def test_mixed_workload_marks_exactly_its_localcsi_pods() -> None:
    workload = WORKLOAD.Workload(pods=20, localcsi_share=0.1, marked=True, storage_class="sc")
    ours = [index for index in range(20) if workload.uses_localcsi(index)]
    assert ours == [0, 10]
    marked = workload.pod(10)["spec"]
    assert marked["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-10"}}]
    assert marked["containers"][0]["resources"] == {
        "requests": {CAPACITY_RESOURCE: "1"},
        "limits": {CAPACITY_RESOURCE: "1"},
    }
    assert "volumes" not in workload.pod(3)["spec"] and "resources" not in workload.pod(3)["spec"]["containers"][0]
    unmarked = WORKLOAD.Workload(pods=3, localcsi_share=1.0, marked=False, storage_class="sc")
    assert all(unmarked.uses_localcsi(index) for index in range(3))
    assert "resources" not in unmarked.pod(1)["spec"]["containers"][0]
    assert unmarked.claim(1)["spec"]["storageClassName"] == "sc"


def test_cpu_ticks_counts_all_but_idle_and_iowait_and_not_guest_twice() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  100 10 50 800 20 5 5 10 40 0\ncpu0 50 5 25 400 10 2 3 5 20 0\n"
    assert WORKLOAD.cpu_ticks(stat) == (180, 1000)


def test_busy_cores_between_the_first_and_last_sample_of_the_window() -> None:
    cores = WORKLOAD.CORES
    samples = [(0.0, 0, 0), (1.0, 50, 100), (2.0, 100, 200), (3.0, 200, 300), (9.0, 900, 1000)]
    # inside 1..3: 150 busy of 200 ticks
    assert WORKLOAD.busy_cores(samples, 1.0, 3.0) == pytest.approx(0.75 * cores)
    assert WORKLOAD.busy_cores(samples, 1.5, 2.5) != WORKLOAD.busy_cores(samples, 1.5, 2.5)  # one sample: NaN


def test_cpu_sampler_samples_this_machine_until_stopped() -> None:
    sampler = WORKLOAD.CpuSampler(interval=0.01)
    while len(sampler.samples) < 3:
        time.sleep(0.005)
    samples = sampler.stop()
    count = len(samples)
    assert [s[0] for s in samples] == sorted(s[0] for s in samples)
    assert all(0 <= busy <= total for _, busy, total in samples)
    assert samples[-1][2] >= samples[0][2]
    assert len(sampler.samples) == count  # stopped: no sample after stop()
