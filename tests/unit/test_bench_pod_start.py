"""The pure parts of benchmarks/bench_pod_start.py: percentiles, the summary and table, the objects it
creates and the order of its rounds. The benchmark itself needs the e2e environment (qemu)."""

from __future__ import annotations

import json
import statistics

import pytest

from localcsi.testing.install import load_project_script

BENCH = load_project_script("benchmarks/bench_pod_start.py")


@pytest.mark.parametrize("values", [[3.0], [2.0, 1.0], [5.0, 1.0, 3.0], [float(v) for v in range(10, 0, -1)]])
def test_p50_is_the_median(values: list[float]) -> None:
    assert BENCH.percentile(values, 0.5) == pytest.approx(statistics.median(values))


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10, given out of order below
    shuffled = values[5:] + values[:5]
    assert BENCH.percentile(shuffled, 0.9) == pytest.approx(9.1)
    assert BENCH.percentile(shuffled, 0.0) == 1.0
    assert BENCH.percentile(shuffled, 1.0) == 10.0


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        BENCH.percentile([], 0.5)


def test_results_summarise_both_kinds_and_their_ratio() -> None:
    result = BENCH.results({"localcsi": [4.0, 2.0, 3.0], "emptyDir": [1.0, 2.0, 1.5]})
    assert result["pods"] == 3
    assert result["localcsi"] == {"samples": [4.0, 2.0, 3.0], "p50": 3.0, "p90": pytest.approx(3.8), "max": 4.0}
    assert result["emptyDir"]["p50"] == 1.5
    assert result["ratio"]["p50"] == pytest.approx(2.0)
    assert result["ratio"]["max"] == pytest.approx(2.0)
    json.dumps(result)  # what --json prints


def test_table_has_a_row_per_kind_and_the_ratio() -> None:
    result = BENCH.results({"localcsi": [3.0, 3.5], "emptyDir": [1.0, 1.25]})
    assert BENCH.table(result).splitlines() == [
        "pod start to Ready, 2 pods of each kind",
        "                p50      p90      max",
        "localcsi     3.25 s   3.45 s   3.50 s",
        "emptyDir     1.12 s   1.23 s   1.25 s",
        "ratio          2.89     2.82     2.80",
    ]


def test_the_pods_differ_only_in_their_volume() -> None:
    claim = BENCH.pod_body("a", "localcsi:dev", {"persistentVolumeClaim": {"claimName": "a"}})
    empty = BENCH.pod_body("a", "localcsi:dev", {"emptyDir": {}})
    assert claim["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "a"}}]
    assert empty["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    del claim["spec"]["volumes"], empty["spec"]["volumes"]
    assert claim == empty
    (container,) = claim["spec"]["containers"]
    assert container["command"] == ["python3", "-m", "localcsi.testing.workload", "hold"]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


def test_the_claim_is_256mi_of_localcsi_lvm() -> None:
    spec = BENCH.pvc_body("vol-0")["spec"]
    assert spec["storageClassName"] == "localcsi-lvm"
    assert spec["resources"] == {"requests": {"storage": "256Mi"}}


@pytest.mark.parametrize(
    ("conditions", "ready"),
    [
        (None, False),
        ([{"type": "PodScheduled", "status": "True"}], False),
        ([{"type": "Ready", "status": "False"}], False),
        ([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}], True),
    ],
)
def test_ready_is_the_ready_condition(conditions: list[dict[str, str]] | None, ready: bool) -> None:
    assert BENCH.is_ready({"status": {"conditions": conditions}}) is ready


def test_rounds_alternate_which_kind_goes_first() -> None:
    order: list[tuple[str, int]] = []

    def side(kind: str, seconds: float) -> object:
        def run(index: int) -> float:
            order.append((kind, index))
            return seconds + index

        return run

    samples = BENCH.run_rounds({"localcsi": side("localcsi", 2.0), "emptyDir": side("emptyDir", 1.0)}, 3)
    assert order == [
        ("localcsi", 0),
        ("emptyDir", 0),
        ("emptyDir", 1),
        ("localcsi", 1),
        ("localcsi", 2),
        ("emptyDir", 2),
    ]
    assert samples == {"localcsi": [2.0, 3.0, 4.0], "emptyDir": [1.0, 2.0, 3.0]}
