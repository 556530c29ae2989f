"""Capacity-aware scheduling, the preference: how good a node is for a pod, 0..10.

binpack (the default) gives fuller nodes, counted after the pod is placed, more, so pods fill nodes one
after the other and whole nodes stay free for large volumes; spread gives emptier nodes more. Space
held for other pods being scheduled counts as used.
"""

from __future__ import annotations

from collections.abc import Container, Sequence, Sized
from collections.abc import Set as AbstractSet

import numpy as np
import numpy.typing as npt

from localcsi.core.capacity_table import NO_ROW, CapacityTable, HeldGroups, pick
from localcsi.core.scheduling import NodeCapacity, PodDemand, Strategy
from localcsi.core.scheduling_charges import Held

MAX_SCORE = 10  # k8s.io/kube-scheduler/extender/v1 MaxExtenderPriority


def _fullness(used: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(MAX_SCORE, used * MAX_SCORE // total))


class Scorer:
    """Scores one pod on node after node, the hot loop of prioritize: 0..10, binpack giving fuller
    nodes (after this pod) more, spread giving emptier nodes more.

    Pods with nothing to place score 0 everywhere, leaving the choice to the other plugins.
    """

    def __init__(self, demand: PodDemand, strategy: Strategy) -> None:
        self._active = bool(demand.requests)
        self._lvm_bytes = demand.lvm_bytes
        self._kinds = frozenset(r.volume_type for r in demand.exclusive)
        self._disks = len(demand.exclusive)
        self._binpack = strategy is Strategy.BINPACK
        self.counts_disks = self._active and not self._lvm_bytes

    def score(self, cap: NodeCapacity | None, held_bytes: int, held_disks: AbstractSet[str], already_held: bool) -> int:
        """``held_*``: what is held on the node for pods being scheduled (disks matter only when
        ``counts_disks``); ``already_held``: that includes this pod's own hold, not to be added twice."""
        if cap is None or not self._active:
            return 0
        if self._lvm_bytes:
            used = cap.size_bytes - cap.free_bytes + held_bytes
            fullness = _fullness(used + (0 if already_held else self._lvm_bytes), cap.size_bytes)
        else:
            total = sum(cap.disk_counts.get(kind, 0) for kind in self._kinds)
            free = sum(1 for d in cap.free_disks if d.kind in self._kinds and d.name not in held_disks)
            fullness = _fullness(total - free + (0 if already_held else self._disks), total)
        return fullness if self._binpack else MAX_SCORE - fullness

    def rank(
        self, nodes: Sequence[str], table: CapacityTable, held: HeldGroups, already_held: Container[str]
    ) -> list[list[str]]:
        """``score`` on every node at once, for demands that hold no disks (``counts_disks`` false),
        as the nodes of each score: ``ranks[s]`` lists the nodes scoring ``s``. ``held``: the VG
        bytes held for pods; ``already_held``: the nodes where that includes this pod's own hold."""
        ranks: list[list[str]] = [[] for _ in range(MAX_SCORE + 1)]
        if not self._active:
            ranks[0].extend(nodes)
            return ranks
        if not nodes:
            return ranks
        rows = table.rows_of(nodes)
        all_known = table.all_reported(rows)
        if not all_known:
            known = rows != NO_ROW
            rows = np.where(known, rows, 0)
        size = table.size[rows]
        if isinstance(already_held, Sized) and not len(already_held):
            taken = table.used[rows] + self._lvm_bytes
        else:
            taken = table.used[rows] + np.where(_members(nodes, already_held), 0, self._lvm_bytes)
        if held:
            taken += table.held_on(rows, held)
        # _fullness on every node, in place: np.clip cost more than the rest of it together
        fullness = taken * MAX_SCORE
        sized = all_known and table.all_sized  # then every size is over 0
        fullness //= size if sized else np.maximum(size, 1)
        np.minimum(fullness, MAX_SCORE, out=fullness)
        np.maximum(fullness, 0, out=fullness)
        if not sized:
            fullness[size <= 0] = 0
        scores = fullness if self._binpack else MAX_SCORE - fullness
        if not all_known:
            scores[~known] = 0  # as score gives: never prefer a node whose room is unknown
        counts = np.bincount(scores, minlength=MAX_SCORE + 1).tolist()
        if max(counts) == len(nodes):  # one score for every node
            ranks[counts.index(len(nodes))] = list(nodes)
            return ranks
        order = np.argsort(scores, kind="stable").tolist()
        start = 0
        for score, count in enumerate(counts):
            ranks[score] = pick(nodes, order[start : start + count])
            start += count
        return ranks


def _members(nodes: Sequence[str], among: Container[str]) -> npt.NDArray[np.bool_]:
    return np.fromiter(map(among.__contains__, nodes), dtype=np.bool_, count=len(nodes))


def score(
    demand: PodDemand, cap: NodeCapacity | None, held: Held | None, strategy: Strategy, *, already_held: bool
) -> int:
    held_bytes, held_disks = (held.total_bytes, held.disks) if held is not None else (0, set())
    return Scorer(demand, strategy).score(cap, held_bytes, held_disks, already_held)
