"""The storage controller's metrics: the leader gauge follows the worker, reconciles are counted by result."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from localcsi.controller.main import Controller
from localcsi.k8s.kubeconfig import ClusterConfig
from localcsi.k8s.rest import KubeApi
from localcsi.metrics.controller import ControllerMetrics

pytestmark = pytest.mark.unit


def test_reconciles_by_result_errors_and_writes() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.reconciled(seconds=0.02, writes=2, errors=0, retry=False, stopped=False)
    metrics.reconciled(seconds=0.03, writes=1, errors=1, retry=True, stopped=False)
    metrics.reconciled(seconds=0.01, writes=0, errors=0, retry=True, stopped=True)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert [value("localcsi_controller_reconciles_total", result=r) for r in ("ok", "retry", "stopped")] == [1, 1, 1]
    assert value("localcsi_controller_reconcile_errors_total") == 1
    assert value("localcsi_controller_writes_total") == 3
    assert value("localcsi_controller_reconcile_duration_seconds_count") == 3


def test_the_leader_gauge_is_1_only_while_the_worker_runs() -> None:
    # A client that is never called: the informers are not started, so the worker waits for their sync.
    controller = Controller(KubeApi(ClusterConfig("http://127.0.0.1:1")), "localcsi", 60.0, "replica-1")
    seen: list[float | None] = []

    def still_leading() -> bool:
        seen.append(REGISTRY.get_sample_value("localcsi_controller_leader"))
        return len(seen) < 2

    assert REGISTRY.get_sample_value("localcsi_controller_leader") == 0
    controller.work(still_leading)
    assert seen == [1, 1]
    assert REGISTRY.get_sample_value("localcsi_controller_leader") == 0
