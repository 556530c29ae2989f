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
from localcsi.core.scheduling_charges import Held
from localcsi.core.scheduling_fit import Fitter, describe_room
from localcsi.core.scheduling_score import MAX_SCORE, Scorer
from localcsi.extender.cache import PERSISTENT_VOLUME_CLAIMS, ClusterView
from localcsi.extender.demand import RecordingLookup, claim_names, pod_demand, pod_label
from localcsi.extender.objects import is_mapping, meta
from localcsi.extender.reservations import DEFAULT_TTL_SECONDS, ReservationLedger
from localcsi.logs import fields

log = logging.getLogger(__name__)


class ClaimFetchError(Exception):
    """The apiserver could not be asked for a claim (anything but a 404)."""


# A live read of one PVC, (namespace, name) -> the object, or None when the apiserver has no such PVC.
ClaimFetcher = Callable[[str, str], dict[str, Any] | None]


@dataclass(frozen=True)
class Priorities:
    """Prioritize's answer: ``ranks[score]`` lists the nodes with that score, 0..MAX_SCORE."""

    ranks: list[list[str]]

    def scores(self) -> dict[str, int]:
        return {node: score for score, nodes in enumerate(self.ranks) for node in nodes}


@dataclass
class FilterOutcome:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # all of ours are unresolvable by preemption
    counted: bool = False  # False: the pod has nothing of ours, every node passed untouched


@dataclass(frozen=True)
class _FilterMemo:
    """What filter worked out for a pod, for its prioritize: its demand, valid while the pod and what
    the demand read of the view are unchanged (in a busy cluster, events for other pods' volumes
    arrive between the two calls), and the nodes it holds on, valid while the ledger is unchanged."""

    uid: str
    pod_key: tuple[object, ...]  # what pod_demand reads of the pod itself
    reads: RecordingLookup  # and of the cluster view: the demand holds while its answers do
    generation: int  # the ledger's, when filter reserved ``passed``
    demand: PodDemand
    passed: list[str]  # the nodes the pod holds on, when it holds wide


_NOTHING_HELD: frozenset[str] = frozenset()  # its membership test is the cheapest (5000 nodes: 0.13 ms, () 0.2 ms)


def _pod_key(pod: Mapping[str, Any]) -> tuple[object, ...]:
    metadata = meta(pod)
    spec = pod.get("spec")
    return metadata.get("namespace"), metadata.get("name"), spec.get("volumes") if is_mapping(spec) else None


def _score_with_disks(scorer: Scorer, cap: NodeCapacity | None, held: Held | None, own: bool) -> int:
    return scorer.score(cap, held.total_bytes if held else 0, held.disks if held else frozenset(), own)


class Extender:
    def __init__(
        self,
        strategy: Strategy = Strategy.BINPACK,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        fetch_claim: ClaimFetcher | None = None,
    ) -> None:
        self.strategy = strategy
        self.fetch_claim = fetch_claim
        self.claims_read_live = 0  # since start, for /metrics: PVCs read live because the informer lagged
        self.lock = threading.RLock()
        self.ledger = ReservationLedger(clock, ttl_seconds)
        # Since start, for /metrics: pods given a reservation by filter, and reservations that expired.
        self.reservations_made = 0
        self.reservations_expired = 0
        self.view = ClusterView(
            on_commit=self._committed, on_pod_done=self._pod_done, on_node_gone=self.ledger.drop_node
        )
        self._memo: _FilterMemo | None = None

    def apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """An informer handler: one event into the view (and so into the ledger)."""
        with self.lock:
            self.view.apply(kind, event_type, obj)

    def resync(self, kind: str, snapshot: Callable[[], Mapping[str, dict[str, Any]]]) -> int:
        """Converge ``kind`` to ``snapshot()``, taken under the lock: an informer updates its cache
        before calling its handlers, so any event newer than the snapshot is applied after it."""
        with self.lock:
            self._memo = None
            return self.view.replace_all(kind, snapshot())

    def filter(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> FilterOutcome:
        uid = str(meta(pod).get("uid") or "")
        label = pod_label(pod)
        unreadable = self._read_unseen_claims(pod)
        with self.lock:
            self._memo = None
            for expired in self.ledger.expire():
                self.reservations_expired += 1
                log.info("reservation expired: the scheduler never committed it", extra=fields(pod=expired))
            self.ledger.release_pod(uid)  # a new attempt replaces the last one
            reads = RecordingLookup(self.view)
            demand, notes = pod_demand(pod, reads)
            if unreadable:
                demand = PodDemand(demand.requests, demand.pins, demand.problems + tuple(unreadable))
            for note in notes:
                log.info("volume not counted: %s", note, extra=fields(pod=label))
            if demand.empty:
                return FilterOutcome(passed=list(nodes))
            ledger = self.ledger
            view = self.view
            passed, failed, holds = Fitter(demand).fit_many(
                nodes, view.table(), view.capacity_table(), ledger.held_groups(), ledger.held
            )
            outcome = FilterOutcome(passed, failed, counted=True)
            ledger.reserve(uid, label, holds)
            self.reservations_made += 1 if ledger.pod_nodes(uid) else 0
            self._memo = _FilterMemo(uid, _pod_key(pod), reads, ledger.generation, demand, passed)
        self._log_filter(label, demand, outcome)
        return outcome

    def prioritize(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> Priorities:
        uid = str(meta(pod).get("uid") or "")
        with self.lock:
            memo = self._memo
            if memo is not None and (memo.uid != uid or memo.pod_key != _pod_key(pod) or not memo.reads.unchanged()):
                memo = None
            demand = memo.demand if memo is not None else pod_demand(pod, self.view)[0]
            scorer = Scorer(demand, self.strategy)
            if not demand.requests:
                return Priorities(scorer.rank(nodes, self.view.table(), [], ()))
            if (
                memo is None
                or memo.generation != self.ledger.generation
                or not (nodes is memo.passed or nodes == memo.passed)
            ):
                # Nothing to release when prioritize is asked about exactly the nodes filter passed.
                released = self.ledger.keep_only(uid, nodes)
                if released:
                    log.debug("released reservations on nodes other filters removed", extra=fields(count=released))
            own, caps = self.ledger.pod_nodes(uid), self.view.capacity_table()
            if scorer.counts_disks:
                ranks: list[list[str]] = [[] for _ in range(MAX_SCORE + 1)]
                for node in nodes:
                    score = _score_with_disks(scorer, caps.get(node), self.ledger.held(node), node in own)
                    ranks[score].append(node)
            elif self.ledger.pod_holds_wide(uid):
                # Its hold takes its demand on every node it passed, as if it were placed there:
                # count the others' holds and add the demand everywhere.
                ranks = scorer.rank(nodes, self.view.table(), self.ledger.held_groups(besides=uid), _NOTHING_HELD)
            else:
                ranks = scorer.rank(nodes, self.view.table(), self.ledger.held_groups(), own)
            return Priorities(ranks)

    def _read_unseen_claims(self, pod: Mapping[str, Any]) -> list[str]:
        """Put into the view, read live, the pod's PVCs its informer has not delivered yet.

        kube-scheduler asks about a pod only once its own cache has all the pod's PVCs, but the
        extender's informer can be behind it: a claim left out then would let the pod land where its
        volume does not fit, next to pods that were promised the same room. A read the apiserver
        cannot answer fails every node with the reason, and kube-scheduler tries the pod again."""
        if self.fetch_claim is None:
            return []
        namespace, names = claim_names(pod)
        with self.lock:
            unseen = [name for name in names if self.view.pvc(namespace, name) is None]
        problems = []
        for name in unseen:  # outside the lock: a read must not stall other requests and events
            try:
                claim = self.fetch_claim(namespace, name)
            except ClaimFetchError as error:
                problems.append(
                    f"PVC {namespace}/{name} is not in the extender's cache yet and reading it failed: {error}"
                )
                continue
            if claim is None:
                continue  # deleted: kube-scheduler refuses the pod on its own
            with self.lock:
                if self.view.pvc(namespace, name) is None:  # the informer may have caught up meanwhile
                    self.view.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", claim)
                    self.claims_read_live += 1
            log.info("PVC read live: the informer had not delivered it yet", extra=fields(pvc=f"{namespace}/{name}"))
        return problems

    def ready_summary(self) -> dict[str, int]:
        with self.lock:
            return {
                "nodes": len(self.view.nodes()),
                "reserved_pods": self.ledger.pod_count,
                "reserved_pod_nodes": self.ledger.hold_count,
                "reservations_made": self.reservations_made,
                "reservations_expired": self.reservations_expired,
                "claims_read_live": self.claims_read_live,
            }

    def _pod_done(self, uid: str) -> None:
        self.ledger.release_pod(uid)

    def _committed(self, key: str, node: str) -> None:
        pods = self.ledger.commit(key, node)
        if pods:
            log.debug("volume committed; reservations narrowed", extra=fields(volume=key, node=node, pods=pods))

    def _log_filter(self, label: str, demand: PodDemand, outcome: FilterOutcome) -> None:
        # A pod that fits is logged at debug: at info (the shipped level), one line per scheduled pod
        # cost 0.06 ms, 40 % of filter's own work at 100 nodes (docs/extender.md).
        if outcome.passed and not log.isEnabledFor(logging.DEBUG):
            return
        volumes = [r.describe() for r in demand.requests]
        if outcome.passed:
            log.debug(
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
