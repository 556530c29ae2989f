"""The reservation ledger: space promised to pods between filter and the scheduler's commitment.

kube-scheduler asks ``filter`` for a pod, picks one of the passing nodes, and only later (in its
binding cycle) writes ``volume.kubernetes.io/selected-node`` on the pod's PVCs. Until that annotation
is visible, a pod that passed on N nodes may land on any of them, so its demand is held on all N
(a *wide* hold); a second pod filtered meanwhile sees that space as taken. Holding is released:

- per volume, when the volume becomes visible as committed (selected-node PVC, PV, LogicalVolume,
  LV): the cluster view counts it from then on, and the pod's other volumes stay held on that node
  only, without a deadline (a *narrow* hold) (``commit``);
- on the nodes prioritize no longer names (``keep_only``);
- when the pod is bound or deleted, or filtered again (a new attempt replaces the old one);
- after ``ttl_seconds`` for a wide hold: the scheduler gave the pod up.

A wide hold is stored as the filter produced it, one entry per node, so reserving costs nothing per
node; filter and prioritize take the holds as groups of nodes that hold the same VG bytes (a few
per pod), which the capacity table lays over its rows in array form. ``held`` sums one node's holds
when asked, for reasons and disks. Narrow holds are kept as running totals per node.

Not thread-safe: the caller holds one lock around the ledger and the cluster view together.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from localcsi.core.capacity_table import HeldGroups
from localcsi.core.scheduling_charges import Assignment, Held, assignment

DEFAULT_TTL_SECONDS = 60.0


def _one_object(values: Collection[object]) -> bool:
    """Whether ``values`` are one object, at least once: a loop in C that stops at the first other one (a
    set of their ids took 600 instructions a node, benchmarks/bench_extender_footprint.py)."""
    if not values:
        return False
    first = next(iter(values))
    return all(map(operator.is_, values, itertools.repeat(first)))


@dataclass
class _PodHold:
    label: str
    created: float
    keys: frozenset[str]
    by_node: dict[str, Assignment] = field(default_factory=dict)  # wide: every node the pod passed
    narrow: tuple[str, Assignment] | None = None  # narrow: committed to this node, holding the rest
    _groups: list[tuple[Sequence[tuple[str, int]], list[str]]] | None = None

    def groups(self) -> list[tuple[Sequence[tuple[str, int]], list[str]]]:
        """``by_node`` as the VG bytes held on each group of nodes (nodes that took the same VGs share
        one Assignment), made once per change of ``by_node``."""
        if self._groups is None and _one_object(self.by_node.values()):
            placed = next(iter(self.by_node.values()))  # the usual case: one choice on every node
            self._groups = [(placed.vg_bytes, list(self.by_node))] if placed.vg_bytes else []
        elif self._groups is None:
            nodes_of: dict[int, tuple[Assignment, list[str]]] = {}
            for node, placed in self.by_node.items():
                group = nodes_of.get(id(placed))
                if group is None:
                    nodes_of[id(placed)] = (placed, [node])
                else:
                    group[1].append(node)
            self._groups = [(placed.vg_bytes, nodes) for placed, nodes in nodes_of.values() if placed.vg_bytes]
        return self._groups

    def set_nodes(self, by_node: dict[str, Assignment]) -> None:
        self.by_node = by_node
        self._groups = None


class ReservationLedger:
    def __init__(self, clock: Callable[[], float], ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._pods: dict[str, _PodHold] = {}
        self._wide: dict[str, _PodHold] = {}
        self._narrow_held: dict[str, Held] = {}
        self._pods_by_key: dict[str, set[str]] = {}
        self._held_groups: dict[str, HeldGroups] = {}  # held_groups(besides), until the next change
        self.generation = 0  # counts changes: what was read at one generation holds until the next

    # Reading ------------------------------------------------------------------------------------

    def held(self, node: str) -> Held | None:
        """Everything held on ``node`` for pods being scheduled; None when nothing is."""
        narrow = self._narrow_held.get(node)
        if not self._wide:
            return narrow
        total: Held | None = None
        for hold in self._wide.values():
            placed = hold.by_node.get(node)
            if placed is None:
                continue
            if total is None:
                total = Held()
                if narrow is not None:
                    total.merge(narrow)
            total.add(placed)
        return total if total is not None else narrow

    def held_groups(self, *, besides: str = "") -> HeldGroups:
        """The VG bytes held for every pod but ``besides`` (a pod UID) where it holds wide (a narrow
        hold of its own still counts), as groups of nodes holding the same (``HeldGroups``): what
        filter takes off each node's room and prioritize counts as used. Computed once after each
        change; the caller must not change it."""
        cached = self._held_groups.get(besides)
        if cached is None:
            groups: list[tuple[Sequence[tuple[str, int]], Collection[str]]] = []
            for uid, hold in self._wide.items():
                if uid != besides:
                    groups.extend(hold.groups())
            groups.extend((tuple(held.vg_bytes.items()), (node,)) for node, held in self._narrow_held.items())
            cached = self._held_groups[besides] = groups
        return cached

    def holds(self, pod_uid: str, node: str) -> bool:
        return node in self.pod_nodes(pod_uid)

    def pod_holds_wide(self, pod_uid: str) -> bool:
        """Whether the pod holds on every node it passed (not committed anywhere yet)."""
        return pod_uid in self._wide

    def pod_nodes(self, pod_uid: str) -> Mapping[str, object]:
        """The nodes the pod holds space on (a mapping, for cheap membership tests)."""
        hold = self._pods.get(pod_uid)
        if hold is None:
            return {}
        if hold.narrow is not None:
            return {hold.narrow[0]: hold.narrow[1]}
        return hold.by_node

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    @property
    def hold_count(self) -> int:
        """(pod, node) pairs currently held."""
        return sum(len(hold.by_node) if hold.narrow is None else 1 for hold in self._pods.values())

    # Changing -----------------------------------------------------------------------------------

    def reserve(self, pod_uid: str, label: str, by_node: dict[str, Assignment]) -> None:
        """Hold ``by_node`` (the ledger keeps the dict) for the pod, replacing what it held before."""
        self.release_pod(pod_uid)
        keys: frozenset[str] = frozenset()
        for placed in by_node.values():
            keys = frozenset(c.key for c in placed.charges)  # every node holds the same volumes
            break
        if not keys:
            return
        hold = _PodHold(label, self._clock(), keys, by_node)
        self._pods[pod_uid] = self._wide[pod_uid] = hold
        self._changed()
        for key in keys:
            self._pods_by_key.setdefault(key, set()).add(pod_uid)

    def release_pod(self, pod_uid: str) -> bool:
        hold = self._pods.pop(pod_uid, None)
        if hold is None:
            return False
        self._changed()
        self._wide.pop(pod_uid, None)
        if hold.narrow is not None:
            self._unhold_narrow(*hold.narrow)
        for key in hold.keys:
            uids = self._pods_by_key.get(key)
            if uids is not None:
                uids.discard(pod_uid)
                if not uids:
                    del self._pods_by_key[key]
        return True

    def keep_only(self, pod_uid: str, nodes: Sequence[str]) -> int:
        """Release the pod's wide holds outside ``nodes``; returns how many were released."""
        hold = self._wide.get(pod_uid)
        if hold is None:
            return 0
        before = hold.by_node
        if len(nodes) == len(before) and all(map(before.__contains__, nodes)):
            return 0  # the usual case: prioritize is asked about every node that passed
        hold.set_nodes({node: before[node] for node in nodes if node in before})
        self._changed()
        if not hold.by_node:
            self.release_pod(pod_uid)
        return len(before) - len(hold.by_node)

    def commit(self, key: str, node: str) -> list[str]:
        """Volume ``key`` is now committed to ``node`` in the cluster view; returns the pods affected.

        The volume's own holds go everywhere (it is counted as committed from now on), and each pod
        that held it keeps its other volumes held on ``node`` only, without a deadline.
        """
        uids = sorted(self._pods_by_key.pop(key, ()))
        if uids:
            self._changed()
        for uid in uids:
            hold = self._pods.get(uid)
            if hold is None:
                continue
            hold.keys = hold.keys - {key}
            if hold.narrow is not None:
                old_node, placed = hold.narrow
                self._unhold_narrow(old_node, placed)
            else:
                del self._wide[uid]
                placed = hold.by_node.get(node) or assignment([])
                hold.set_nodes({})
            rest = assignment([c for c in placed.charges if c.key != key])
            if not rest.charges:
                hold.narrow = None
                self.release_pod(uid)
                continue
            hold.narrow = (node, rest)
            self._narrow_held.setdefault(node, Held()).add(rest)
        return uids

    def drop_node(self, node: str) -> None:
        """The node is gone: nothing can be held there."""
        self._changed()
        for uid, hold in list(self._pods.items()):
            if hold.narrow is None:
                if node in hold.by_node:
                    hold.set_nodes({n: placed for n, placed in hold.by_node.items() if n != node})
                gone = not hold.by_node
            else:
                gone = hold.narrow[0] == node
            if gone:
                self.release_pod(uid)
        self._narrow_held.pop(node, None)

    def expire(self) -> list[str]:
        """Release wide holds older than the TTL; returns the labels of the pods released."""
        deadline = self._clock() - self._ttl
        stale = [uid for uid, hold in self._wide.items() if hold.created <= deadline]
        labels = [self._pods[uid].label for uid in stale]
        for uid in stale:
            self.release_pod(uid)
        return labels

    # Internals ----------------------------------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        self._held_groups.clear()

    def _unhold_narrow(self, node: str, placed: Assignment) -> None:
        total = self._narrow_held.get(node)
        if total is None:
            return
        total.remove(placed)
        if total.empty:
            del self._narrow_held[node]
