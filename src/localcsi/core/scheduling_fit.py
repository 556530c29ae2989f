"""Capacity-aware scheduling, the decisions: does a pod's whole demand fit a node, and how good is it.

``fit`` checks every volume of the pod together, against the node's room minus what is held for
other pods being scheduled, and returns either the charges to reserve (which VG or disk each volume
would take) or one reason. Reasons name the pod's volumes and sizes but not the node's own numbers,
so kube-scheduler's event, which counts identical reasons, stays short on a large cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress

import numpy as np
import numpy.typing as npt

from localcsi.core.capacity_table import NO_ROW, CapacityTable, HeldGroups, pick
from localcsi.core.scheduling import NodeCapacity, PodDemand, VolumeRequest, best_fit
from localcsi.core.scheduling_charges import HELD_NOTE, Assignment, Charge, Held, assignment
from localcsi.core.scheduling_disks import fit_exclusive
from localcsi.core.sizes import format_bytes

PREFIX = "localcsi: "
NO_REPORT = (
    PREFIX + "no storage report for this node (no NodeLocalStorage status): is the localcsi agent running on it?"
)
_NO_FIT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Fit:
    assignment: Assignment | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def charges(self) -> tuple[Charge, ...]:
        return self.assignment.charges if self.assignment is not None else ()


def _labels(requests: Sequence[VolumeRequest]) -> str:
    return ", ".join(r.describe() for r in requests)


def _lvm_room(cap: NodeCapacity, held: Held | None) -> dict[str, int]:
    if held is None or not held.vg_bytes:
        return dict(cap.vg_free)
    return {name: room - held.vg_bytes.get(name, 0) for name, room in cap.vg_free.items()}


def _held_made_the_difference(cap: NodeCapacity, vg: str | None, need: int) -> bool:
    if vg is None:
        return any(room >= need for room in cap.vg_free.values())
    return cap.vg_free.get(vg, 0) >= need


def _fit_named(
    demand: PodDemand, cap: NodeCapacity, room: dict[str, int], charges: list[Charge]
) -> tuple[str, str | None, int] | None:
    """Place the volumes that name their VG; on failure (reason, vg, bytes needed)."""
    for vg, requests in demand.named.items():
        if vg not in room:
            if vg in cap.vg_problems:
                return f"VG {vg} (vgName of {_labels(requests)}) is not usable: {cap.vg_problems[vg]}", None, 0
            return f"VG {vg} (vgName of {_labels(requests)}) is not on this node", None, 0
        need = sum(r.charge_bytes for r in requests)
        if need > room[vg]:
            return f"VG {vg} lacks room for {_labels(requests)}", vg, need
        room[vg] -= need
        charges.extend(Charge(r.key, vg, r.charge_bytes) for r in requests)
    return None


def _best_fit_rows(
    room: npt.NDArray[np.int64], known: npt.NDArray[np.bool_], charges: Sequence[int]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """``best_fit`` of each charge in turn on every row of ``room`` (free bytes per column, changed in
    place when it is C-contiguous) at once: whether all charges fit each row (False where not
    ``known``), and the column each charge takes. Ties go to the first column, the smallest name, as
    in ``best_fit``."""
    room = np.ascontiguousarray(room)
    rows, columns = room.shape
    flat = room.reshape(-1)
    row_starts = np.arange(0, rows * columns, columns)
    choice = np.empty((rows, len(charges)), dtype=np.int64)
    fits = known.copy()
    for index, charge in enumerate(charges):
        left = room - charge
        np.putmask(left, left < 0, _NO_FIT)
        column = left.argmin(axis=1)  # the least left, the first (smallest name) of equals
        taken = row_starts + column  # flat positions: faster than indexing by (row, column) pairs
        best = left.reshape(-1)[taken]
        fits &= best != _NO_FIT
        flat[taken] = best
        choice[:, index] = column
    return fits, choice


_FEW_CODES = 4096  # up to this many possible rows, they are counted (bincount) rather than sorted


def _same_rows(choice: npt.NDArray[np.int64]) -> list[tuple[list[int], npt.NDArray[np.intp]]]:
    """The distinct rows of ``choice`` (small non-negative numbers), each with the indexes that have it,
    in the order of their numbers in base ``1 + max`` (the first column the least significant). Rows are
    numbered to group them: far faster than ``np.unique(axis=0)``, and counting the numbers faster
    than sorting them when there can be few."""
    base = int(choice.max()) + 1
    width = choice.shape[1]
    if base**width >= 1 << 62:
        distinct, members = np.unique(choice, axis=0, return_inverse=True)
        members = members.reshape(-1)
        return [(row, np.flatnonzero(members == group)) for group, row in enumerate(distinct.tolist())]
    codes = choice[:, width - 1].copy()
    for column in range(width - 2, -1, -1):
        codes *= base
        codes += choice[:, column]
    if base**width <= _FEW_CODES:
        present = np.flatnonzero(np.bincount(codes)).tolist()
        if len(present) == 1:  # the usual case: every node takes the same VGs
            return [(choice[0].tolist(), np.arange(len(choice)))]
        groups = [np.flatnonzero(codes == code) for code in present]
        return [(choice[members[0]].tolist(), members) for members in groups]
    _, first, members = np.unique(codes, return_index=True, return_inverse=True)
    return [(row, np.flatnonzero(members == group)) for group, row in enumerate(choice[first].tolist())]


def _fit_unnamed(demand: PodDemand, room: dict[str, int], charges: list[Charge]) -> tuple[str, str | None, int] | None:
    """Best fit, largest volume first: the VG that is left with the least room, ties by name."""
    placed: list[VolumeRequest] = []
    for request in demand.unnamed:
        charge = request.charge_bytes
        best = best_fit(room, charge)
        if best is None:
            if not room:
                return "this node has no usable LVM volume group", None, 0
            after = f" besides {_labels(placed)}" if placed else ""
            return f"no VG has room for {request.describe()}{after}", None, charge
        placed.append(request)
        charges.append(Charge(request.key, best, charge))
    return None


def _blocked(demand: PodDemand, node: str | None) -> str | None:
    if demand.problems:
        return PREFIX + "; ".join(demand.problems)
    for pin in demand.pins:
        if pin.node != node:
            return PREFIX + pin.reason
    if demand.requests and node is None:
        return NO_REPORT
    return None


class Fitter:
    """Fits one pod's demand to node after node, the hot loop of filter.

    Nodes with the same outcome share one Assignment, and the common case (LVM volumes without
    vgName) is a few subtractions and comparisons per node, with no object made.
    """

    def __init__(self, demand: PodDemand) -> None:
        self.demand = demand
        self._simple = bool(demand.unnamed) and not demand.named and not demand.exclusive and not demand.problems
        self._pinned = {pin.node for pin in demand.pins}
        self._lvm_bytes = demand.lvm_bytes
        self._charges = tuple(r.charge_bytes for r in demand.unnamed)
        self._shared: dict[tuple[str, ...], Assignment] = {}
        self._nothing = Assignment((), (), (), 0)

    def fit(self, cap: NodeCapacity | None, held: Held | None) -> Assignment | str:
        if cap is None or not self._simple or (self._pinned and self._pinned != {cap.node}):
            return self._fit(cap, held)
        vg_free = cap.vg_free
        held_vg = held.vg_bytes if held is not None and held.vg_bytes else None
        if len(vg_free) == 1:
            ((vg, free),) = vg_free.items()
            if held_vg is not None:
                free -= held_vg.get(vg, 0)
            if free >= self._lvm_bytes:
                return self._assignment((vg,) * len(self._charges))
            return self._fit(cap, held)  # for the reason
        room = {n: f - held_vg.get(n, 0) for n, f in vg_free.items()} if held_vg is not None else dict(vg_free)
        choice: list[str] = []
        for charge in self._charges:
            chosen = best_fit(room, charge)
            if chosen is None:
                return self._fit(cap, held)  # for the reason
            choice.append(chosen)
        return self._assignment(tuple(choice))

    def fit_many(
        self,
        nodes: Sequence[str],
        table: CapacityTable,
        caps: Mapping[str, NodeCapacity],
        held_groups: HeldGroups,
        held: Callable[[str], Held | None],
    ) -> tuple[list[str], dict[str, str], dict[str, Assignment]]:
        """``fit`` on every node: the nodes that pass, the reason for each that fails, and what to hold
        on each that passes. ``table`` and ``caps`` are the reported nodes' room, ``held_groups`` the
        VG bytes held for other pods, and ``held`` gives a node's holds in full.

        For the common demand (LVM volumes without vgName, no pin) every node is judged at once on
        ``table`` less what is held, best fit in array form; the nodes that fail (for their reason)
        and other demands go through ``fit``. On a large cluster this is filter's whole cost
        (benchmarks/bench_extender.py).
        """
        if not (self._simple and not self._pinned and nodes and table.vg_names):
            passing = [False] * len(nodes)
            failed, placed_each = self._fit_each(nodes, range(len(nodes)), caps=caps, held=held, passing=passing)
            return list(compress(nodes, passing)), failed, placed_each
        rows = table.rows_of(nodes)
        room = table.room(rows, held_groups)
        if room.shape[1] == 1:  # one VG name in the whole cluster: every volume goes to it, or none fits
            fits = (room[:, 0] >= self._lvm_bytes) if self._lvm_bytes < _NO_FIT else np.zeros(len(rows), np.bool_)
            if not table.all_reported(rows):
                fits &= rows != NO_ROW
            passing = fits.tolist()
            holds = dict.fromkeys(compress(nodes, passing), self._assignment((table.vg_names[0],) * len(self._charges)))
        else:
            fits, choice = _best_fit_rows(room, rows != NO_ROW, self._charges)
            passing = fits.tolist()
            holds = self._holds_by_choice(nodes, passing, fits, choice, table.vg_names)
        failing = np.flatnonzero(~fits).tolist() if False in passing else []
        if failing:
            # Their reasons need what is held on each; the table has it by VG, where ``held`` would add
            # up every pod's hold per node (at 5000 nodes with 100 pods holding: 88 of 100 ms a filter).
            held_here = table.held_by_vg(rows[failing], held_groups)
            held_of = {nodes[i]: _held(*here) for i, here in zip(failing, held_here, strict=True)}
            held = held_of.__getitem__
        failed, slow_holds = self._fit_each(nodes, failing, caps=caps, held=held, passing=passing)
        holds.update(slow_holds)
        if not failing:
            return list(nodes), failed, holds
        passed = list(compress(nodes, passing))
        # prioritize is asked about the nodes that passed next: their rows, for its rows_of
        table.remember(passed, rows[np.fromiter(passing, dtype=np.bool_, count=len(passing))])
        return passed, failed, holds

    def _holds_by_choice(
        self,
        nodes: Sequence[str],
        passing: list[bool],
        fits: npt.NDArray[np.bool_],
        choice: npt.NDArray[np.int64],
        vg_names: Sequence[str],
    ) -> dict[str, Assignment]:
        """What to hold on each node that passed, from the column each charge took there (``choice``)."""
        fast = np.flatnonzero(fits)
        groups = _same_rows(choice[fast]) if len(fast) else []
        if len(groups) == 1:  # the usual case: every passing node took the same VGs
            return dict.fromkeys(compress(nodes, passing), self._assignment(tuple(vg_names[c] for c in groups[0][0])))
        holds: dict[str, Assignment] = {}
        for columns, members in groups:
            placed = self._assignment(tuple(vg_names[c] for c in columns))
            holds.update(dict.fromkeys(pick(nodes, fast[members].tolist()), placed))
        return holds

    def _fit_each(
        self,
        nodes: Sequence[str],
        indexes: Iterable[int],
        *,
        caps: Mapping[str, NodeCapacity],
        held: Callable[[str], Held | None],
        passing: list[bool],
    ) -> tuple[dict[str, str], dict[str, Assignment]]:
        """``fit`` on ``nodes[i]`` for each of ``indexes``, setting ``passing[i]`` for those that fit: the
        reason of each that fails, and what to hold on each that fits."""
        failed: dict[str, str] = {}
        holds: dict[str, Assignment] = {}
        for index in indexes:
            node = nodes[index]
            result = self.fit(caps.get(node), held(node))
            if isinstance(result, str):
                failed[node] = result
            else:
                passing[index] = True
                holds[node] = result
        return failed, holds

    def _assignment(self, choice: tuple[str, ...]) -> Assignment:
        shared = self._shared.get(choice)
        if shared is None:
            charges = [Charge(r.key, vg, r.charge_bytes) for r, vg in zip(self.demand.unnamed, choice, strict=True)]
            shared = self._shared[choice] = assignment(charges)
        return shared

    def _fit(self, cap: NodeCapacity | None, held: Held | None) -> Assignment | str:
        demand = self.demand
        blocked = _blocked(demand, cap.node if cap is not None else None)
        if blocked is not None:
            return blocked
        if cap is None or not demand.requests:
            return self._nothing
        charges: list[Charge] = []
        if demand.named or demand.unnamed:
            room = _lvm_room(cap, held)
            failed = _fit_named(demand, cap, room, charges) or _fit_unnamed(demand, room, charges)
            if failed is not None:
                reason, vg, need = failed
                note = HELD_NOTE if need and held and _held_made_the_difference(cap, vg, need) else ""
                return PREFIX + reason + note
        exclusive_failure = fit_exclusive(demand, cap, held, charges)
        if exclusive_failure is not None:
            return PREFIX + exclusive_failure
        return assignment(charges)


def _held(vg_bytes: dict[str, int], elsewhere: int) -> Held | None:
    """A node's holds for a demand of LVM bytes alone (no disks), as the ledger's ``held`` gives them;
    bytes held in VGs the node lacks change no room, but they are a hold (the reason says so)."""
    if not vg_bytes and not elsewhere:
        return None
    return Held(vg_bytes, set(), sum(vg_bytes.values()) + elsewhere)


def fit(demand: PodDemand, cap: NodeCapacity | None, held: Held | None = None) -> Fit:
    """Whether all of ``demand`` fits on the node of ``cap`` next to what ``held`` keeps for others."""
    result = Fitter(demand).fit(cap, held)
    return Fit(reason=result) if isinstance(result, str) else Fit(assignment=result)


def describe_room(cap: NodeCapacity | None, held: Held | None) -> Mapping[str, str]:
    """The node's numbers behind a decision, for logs: free (and held) bytes per VG, free disks."""
    if cap is None:
        return {"report": "missing"}
    held_vg = held.vg_bytes if held else {}
    room = {
        f"vg/{name}": f"{format_bytes(max(free, 0))} free, {format_bytes(held_vg.get(name, 0))} held"
        for name, free in cap.vg_free.items()
    }
    if cap.free_disks:
        room["disks"] = ", ".join(d.name for d in cap.free_disks if not held or d.name not in held.disks)
    return room
