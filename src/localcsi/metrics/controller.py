"""The storage controller's metrics: is this replica the leader, and how its reconciles go.

Every replica serves them; only the leader reconciles, so ``sum(localcsi_controller_leader)`` is 1 in a
healthy cluster and 0 when no replica holds the Lease (the LocalcsiNoControllerLeader alert).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.leader = Gauge(
            "localcsi_controller_leader", "1 while this storage controller replica leads and reconciles.",
            registry=registry,
        )  # fmt: skip
        self.reconciles = Counter(
            "localcsi_controller_reconciles",
            "Reconcile passes by result: ok, retry (a write failed or lost a race), stopped (leadership lost).",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "localcsi_controller_reconcile_errors",
            "NodeLocalStorage writes that failed (apiserver errors; lost races are not counted).",
            registry=registry,
        )
        self.writes = Counter(
            "localcsi_controller_writes", "NodeLocalStorages created, updated or deleted.", registry=registry
        )
        self.duration = Histogram(
            "localcsi_controller_reconcile_duration_seconds", "Time of each reconcile pass.", buckets=BUCKETS,
            registry=registry,
        )  # fmt: skip

    def reconciled(self, *, seconds: float, writes: int, errors: int, retry: bool, stopped: bool) -> None:
        self.duration.observe(seconds)
        self.reconciles.labels("stopped" if stopped else "retry" if retry else "ok").inc()
        self.errors.inc(errors)
        self.writes.inc(writes)


CONTROLLER: Final = ControllerMetrics()
