"""The pure part of benchmarks/bench_scheduler.py (bench_scheduler_stats.py and the workload's shape). The
benchmark itself needs a real apiserver and kube-scheduler."""

from __future__ import annotations

import importlib.util
import math
import os
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
CPU = load_benchmark_module("bench_scheduler_cpu")

pytestmark = pytest.mark.unit


def test_ratios_are_taken_round_by_round() -> None:
    rates = {"extender": [100.0, 90.0, 50.0], "baseline": [100.0, 100.0, 100.0, 100.0]}
    summary = STATS.round_ratios(rates, "extender", "baseline")
    assert summary.ratios == (1.0, 0.9, 0.5)  # a fourth baseline round has no partner
    assert summary.mean == pytest.approx(0.8)
    assert (summary.low, summary.high, summary.spread) == (0.5, 1.0, 0.25)
    assert summary.meets(0.8) and not summary.meets(0.81)
    assert summary.standard_error == pytest.approx(0.264575 / 3**0.5, rel=1e-5)  # stdev 0.2646 over 3 rounds
    assert STATS.RatioSummary((0.9,)).standard_error is None
    with pytest.raises(ValueError, match="no round"):
        STATS.round_ratios({"a": [], "b": [1.0]}, "a", "b")


def test_every_other_round_runs_the_sides_backwards() -> None:
    assert STATS.side_order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert STATS.side_order(["a", "b", "c"], 1) == ["c", "b", "a"]


def test_described_with_spread_rounds_and_goal() -> None:
    comparison = STATS.Comparison("mixed", "x", "y", 0.95)
    text = STATS.describe(comparison, STATS.RatioSummary((0.9, 1.1)))
    assert text == "mixed: 1.00 ± 0.10 (standard error 0.10; rounds 0.90, 1.10), goal >= 0.95 met"
    alone = STATS.describe(comparison, STATS.RatioSummary((0.9,)))
    assert alone == "mixed: 0.90 ± 0.00 (rounds 0.90), goal >= 0.95 MISSED"


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
    assert CPU.cpu_ticks(stat) == (180, 1000)


def samples() -> list[object]:
    sample = CPU.Sample
    return [
        sample(0.0, 0, 0, {"etcd": 0}),
        sample(1.0, 50, 100, {"etcd": 10, "extender": 5}),
        sample(2.0, 100, 200, {"etcd": 20, "extender": 9}),
        sample(3.0, 200, 300, {"etcd": 40, "extender": 25}),
        sample(9.0, 900, 1000, {"etcd": 90}),
    ]


def test_busy_cores_between_the_first_and_last_sample_of_the_window() -> None:
    # inside 1..3: 150 busy of 200 ticks
    assert CPU.busy_cores(samples(), 1.0, 3.0) == pytest.approx(0.75 * CPU.CORES)
    assert math.isnan(CPU.busy_cores(samples(), 1.5, 2.5))  # one sample in the window


def test_cpu_per_pod_of_the_machine_and_of_each_process_that_lived_through_the_window() -> None:
    tick_ms = 1000 / CPU.TICKS_PER_SECOND
    spent = CPU.cpu_per_pod(samples(), 1.0, 3.0, pods=10)
    assert spent == pytest.approx({"machine": 15 * tick_ms, "etcd": 3 * tick_ms, "extender": 2 * tick_ms})
    assert "extender" not in CPU.cpu_per_pod(samples(), 0.0, 9.0, pods=10)  # not there at both ends
    assert CPU.cpu_per_pod(samples(), 1.5, 2.5, pods=10) == {}


def test_cpu_sampler_samples_the_machine_and_this_process_until_stopped() -> None:
    assert CPU.pids_by_command(["no-such-command"]) == {}
    sampler = CPU.CpuSampler({"self": os.getpid(), "gone": 2**22 + 1}, interval=0.01)
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # spend CPU, so that this process's ticks grow
        sum(range(10_000))
    taken = sampler.stop()
    count = len(taken)
    assert count >= 3 and [s.at for s in taken] == sorted(s.at for s in taken)
    assert all(0 <= s.busy <= s.total and "gone" not in s.processes for s in taken)
    assert taken[-1].processes["self"] > taken[0].processes["self"]
    assert len(sampler.samples) == count  # stopped: no sample after stop()
