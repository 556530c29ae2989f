"""Filter and prioritize: the cluster view and the reservation ledger behind one lock.

One lock makes each filter atomic: it reads the room every node has left after other pods'
reservations and writes its own before the next filter (or informer event) can look. That is what
keeps two pods filtered at the same moment from both being promised the same space.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localcsi.core.scheduling import NodeCapacity, PodDemand, Strategy
from localcsi.core.scheduling_fit import Assignment, Fitter, Held, describe_room
from localcsi.core.scheduling_score import Scorer
from localcsi.extender.cache import ClusterView
from localcsi.extender.demand import pod_demand, pod_label
from localcsi.extender.objects import meta
from localcsi.extender.reservations import DEFAULT_TTL_SECONDS, ReservationLedger
from localcsi.logs import fields

log = logging.getLogger(__name__)


@dataclass
class FilterOutcome:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # all of ours are unresolvable by preemption
    counted: bool = False  # False: the pod has nothing of ours, every node passed untouched


def _score_with_disks(scorer: Scorer, cap: NodeCapacity | None, held: Held | None, own: bool) -> int:
    return scorer.score(cap, held.total_bytes if held else 0, held.disks if held else frozenset(), own)


class Extender:
    def __init__(
        self,
        strategy: Strategy = Strategy.BINPACK,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.strategy = strategy
        self.lock = threading.RLock()
        self.ledger = ReservationLedger(clock, ttl_seconds)
        self.view = ClusterView(
            on_commit=self._committed, on_pod_done=self._pod_done, on_node_gone=self.ledger.drop_node
        )

    def apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """An informer handler: one event into the view (and so into the ledger)."""
        with self.lock:
            self.view.apply(kind, event_type, obj)

    def resync(self, kind: str, snapshot: Callable[[], Mapping[str, dict[str, Any]]]) -> int:
        """Converge ``kind`` to ``snapshot()``, taken under the lock: an informer updates its cache
        before calling its handlers, so any event newer than the snapshot is applied after it."""
        with self.lock:
            return self.view.replace_all(kind, snapshot())

    def filter(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> FilterOutcome:
        uid = str(meta(pod).get("uid") or "")
        label = pod_label(pod)
        with self.lock:
            for expired in self.ledger.expire():
                log.info("reservation expired: the scheduler never committed it", extra=fields(pod=expired))
            self.ledger.release_pod(uid)  # a new attempt replaces the last one
            demand, notes = pod_demand(pod, self.view)
            for note in notes:
                log.info("volume not counted: %s", note, extra=fields(pod=label))
            if demand.empty:
                return FilterOutcome(passed=list(nodes))
            outcome = FilterOutcome(counted=True)
            holds: dict[str, Assignment] = {}
            fit, passed, failed = Fitter(demand).fit, outcome.passed, outcome.failed
            capacities, helds = self.view.capacities(nodes), self.ledger.held_many(nodes)
            for node, cap, held in zip(nodes, capacities, helds, strict=True):
                result = fit(cap, held)
                if isinstance(result, str):
                    failed[node] = result
                else:
                    passed.append(node)
                    holds[node] = result
            self.ledger.reserve(uid, label, holds)
        self._log_filter(label, demand, outcome)
        return outcome

    def prioritize(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> list[tuple[str, int]]:
        uid = str(meta(pod).get("uid") or "")
        with self.lock:
            demand, _ = pod_demand(pod, self.view)
            if not demand.requests:
                return [(node, 0) for node in nodes]
            released = self.ledger.keep_only(uid, nodes)
            if released:
                log.debug("released reservations on nodes other filters removed", extra=fields(count=released))
            own = self.ledger.pod_nodes(uid)
            scorer, capacities = Scorer(demand, self.strategy), self.view.capacities(nodes)
            if scorer.counts_disks:
                helds = self.ledger.held_many(nodes)
                scores = [
                    _score_with_disks(scorer, cap, held, node in own)
                    for node, cap, held in zip(nodes, capacities, helds, strict=True)
                ]
            elif self.ledger.holds_wide(uid):
                # its own hold is the same everywhere: count others' holds and add its demand
                held_bytes = self.ledger.held_bytes_many(nodes, besides=uid)
                scores = scorer.score_many(capacities, held_bytes, [False] * len(nodes))
            else:
                scores = scorer.score_many(capacities, self.ledger.held_bytes_many(nodes), [n in own for n in nodes])
            return list(zip(nodes, scores, strict=True))

    def ready_summary(self) -> dict[str, int]:
        with self.lock:
            return {
                "nodes": len(self.view.nodes()),
                "reserved_pods": self.ledger.pod_count,
                "reserved_pod_nodes": self.ledger.hold_count,
            }

    def _pod_done(self, uid: str) -> None:
        self.ledger.release_pod(uid)

    def _committed(self, key: str, node: str) -> None:
        pods = self.ledger.commit(key, node)
        if pods:
            log.debug("volume committed; reservations narrowed", extra=fields(volume=key, node=node, pods=pods))

    def _log_filter(self, label: str, demand: PodDemand, outcome: FilterOutcome) -> None:
        volumes = [r.describe() for r in demand.requests]
        if outcome.passed:
            log.info(
                "filter: %d of %d nodes fit",
                len(outcome.passed),
                len(outcome.passed) + len(outcome.failed),
                extra=fields(pod=label, volumes=volumes, pins=[p.node for p in demand.pins]),
            )
            return
        sample = sorted(outcome.failed.items())[:3]
        with self.lock:
            rooms = {node: describe_room(self.view.capacity(node), self.ledger.held(node)) for node, _ in sample}
        log.warning(
            "filter: no node fits",
            extra=fields(pod=label, volumes=volumes, reasons=dict(sample), rooms=rooms),
        )
