"""Every node's room as arrays, so filter and prioritize judge a whole request at once.

One row per reported node (kept for the node's life; a removed node's row is blanked and reused),
one column per VG name in the cluster, columns in name order so that the first of equal candidates
is the one with the smallest name, as ``best_fit`` breaks ties. A node without a VG, or with it
unusable, has ``NO_ROOM`` there, so no volume ever fits it.

A request's node names are turned into row numbers with one dictionary lookup each, done in C
(``rows_of``); everything after that is array arithmetic over all the request's nodes together.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from itertools import repeat
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from localcsi.core.scheduling import NodeCapacity

Rows = npt.NDArray[np.int64]
_KeptRows = npt.NDArray[np.int32] | npt.NDArray[np.int64]
# What is held for pods being scheduled, as groups: the (VG, bytes) pairs held on each of some nodes.
# A pod's wide hold is a few groups (the nodes where it took the same VGs), however many nodes it has.
# Neither a HeldGroups nor a group's nodes may change once the table has seen them: it knows them by identity.
HeldGroups = Sequence[tuple[Sequence[tuple[str, int]], Collection[str]]]
NO_ROW = -1
NO_ROOM = -(1 << 62)  # far below any real free space, and far from overflowing when charges are taken off
_GROWTH = 2
_FIRST_ROWS = 16
_COMPACT_ROWS = 1024  # a held group on more nodes keeps its rows as int32
_RECENT = 2  # filter's nodes, and prioritize's (those that passed; filter hands their rows over)


def pick(names: Sequence[str], indexes: list[int]) -> list[str]:
    """``[names[i] for i in indexes]``, with the loop in C (``itemgetter``)."""
    if len(indexes) == 1:
        return [names[indexes[0]]]
    return list(itemgetter(*indexes)(names)) if indexes else []


class CapacityTable:
    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._free_rows: list[int] = []
        self.vg_names: list[str] = []
        self._columns: dict[str, int] = {}
        # Rows are allocated ahead, so row 0 exists even before any node does: callers index a
        # node without a report with 0 and mask it out.
        self.free = np.full((_FIRST_ROWS, 0), NO_ROOM, dtype=np.int64)  # [row, column]: bytes free in that VG
        self.used = np.zeros(_FIRST_ROWS, dtype=np.int64)  # [row]: bytes used over the usable VGs
        self.size = np.zeros(_FIRST_ROWS, dtype=np.int64)  # [row]: bytes of the usable VGs (0: none)
        # The last requests' nodes, their rows, and whether every one of them has a report.
        self._recent: list[tuple[list[str], Rows, bool]] = []
        self._unsized: set[int] = set()  # the rows of reported nodes without a usable VG (size 0)
        self._held = _HeldLayer(self)

    def __len__(self) -> int:
        return len(self._rows)

    def set(self, cap: NodeCapacity) -> None:
        """Record (or replace) ``cap.node``'s row."""
        self._add_columns(cap.vg_free)
        row = self._rows.get(cap.node)
        if row is None:
            row = self._free_rows.pop() if self._free_rows else self._new_row()
            self._rows[cap.node] = row
            self._recent.clear()
            self._held.forget()
        free = self.free[row]
        free.fill(NO_ROOM)
        for vg, room in cap.vg_free.items():
            free[self._columns[vg]] = room
        self.used[row] = cap.used_bytes
        self.size[row] = cap.size_bytes
        if cap.size_bytes <= 0:
            self._unsized.add(row)
        else:
            self._unsized.discard(row)

    def drop(self, node: str) -> None:
        row = self._rows.pop(node, None)
        if row is not None:
            self._recent.clear()
            self._held.forget()
            self.free[row].fill(NO_ROOM)
            self.used[row] = self.size[row] = 0
            self._unsized.discard(row)
            self._free_rows.append(row)

    def rows_of(self, nodes: Sequence[str]) -> Rows:
        """Each node's row, ``NO_ROW`` for a node without a report; the caller must not change it.

        kube-scheduler sends nearly the same names request after request, and comparing them with the
        last ones is several times faster than looking each up anew (the names arrive as new strings,
        so every lookup compares against a key that is cold in the CPU's caches).
        """
        for position, (known, rows, _) in enumerate(self._recent):
            if known == nodes:
                if position:
                    self._recent.insert(0, self._recent.pop(position))
                return rows
        rows = self._lookup(nodes)
        self.remember(nodes, rows)
        return rows

    def remember(self, nodes: Sequence[str], rows: Rows) -> None:
        """``rows`` are ``nodes``' rows (as ``rows_of`` would give them), for the next ``rows_of``: filter
        hands over the rows of the nodes that passed, which prioritize is asked about next."""
        for position, (known, _, _) in enumerate(self._recent):
            if known is nodes or known == nodes:
                del self._recent[position]
                break
        self._recent = [(list(nodes), rows, NO_ROW not in rows), *self._recent[: _RECENT - 1]]

    def all_reported(self, rows: Rows) -> bool:
        """Whether every one of ``rows`` (as ``rows_of`` gives them) is a reported node's: then no row needs
        masking. Known without a look at the rows for those of the last requests, which are the ones asked."""
        for _, known_rows, every in self._recent:
            if known_rows is rows:
                return every
        return NO_ROW not in rows

    def _indexable(self, rows: Rows) -> Rows:
        """``rows`` with ``NO_ROW`` as row 0, for indexing (the caller masks those out); ``rows`` itself
        when every one has a report."""
        return rows if self.all_reported(rows) else np.where(rows != NO_ROW, rows, 0)

    @property
    def all_sized(self) -> bool:
        """Whether every reported node has a usable VG (size over 0): no score divides by 0."""
        return not self._unsized

    def room(self, rows: Rows, held: HeldGroups) -> npt.NDArray[np.int64]:
        """The free bytes of ``rows`` (as ``rows_of`` gives them) per column, less what ``held``
        holds there; a new array. Rows of ``NO_ROW`` get row 0's: the caller masks them out."""
        rows = self._indexable(rows)
        room = self.free[rows]
        if held:
            room -= self._held.update(held).by_column[rows]
        return room

    def held_on(self, rows: Rows, held: HeldGroups) -> npt.NDArray[np.int64]:
        """The bytes ``held`` holds on each of ``rows`` (as ``rows_of`` gives them), over all its VGs; a
        new array. ``NO_ROW`` rows get row 0's: the caller masks them out."""
        if not held:
            return np.zeros(len(rows), dtype=np.int64)
        layer = self._held.update(held)
        rows = self._indexable(rows)
        by_column = layer.by_column
        total: npt.NDArray[np.int64] = by_column[:, 0][rows] if by_column.shape[1] == 1 else by_column[rows].sum(axis=1)
        if layer.held_elsewhere:
            total += layer.elsewhere[rows]
        return total

    def held_by_vg(self, rows: Rows, held: HeldGroups) -> list[tuple[dict[str, int], int]]:
        """What ``held`` holds on each of ``rows``: by VG name where some node has the VG (VGs with
        nothing held left out), and in bytes over the VGs no node has. ``NO_ROW`` rows get row 0's:
        the caller masks them out."""
        if not held:
            return [({}, 0) for _ in range(len(rows))]
        names = self.vg_names
        layer = self._held.update(held)
        rows = self._indexable(rows)
        lines = zip(layer.by_column[rows].tolist(), layer.elsewhere[rows].tolist(), strict=True)
        return [
            ({names[column]: amount for column, amount in enumerate(line) if amount}, other) for line, other in lines
        ]

    def _lookup(self, nodes: Collection[str]) -> Rows:
        """Each node's row (``NO_ROW`` for an unknown one), one dictionary lookup each, in C."""
        return np.fromiter(map(self._rows.get, nodes, repeat(NO_ROW)), dtype=np.int64, count=len(nodes))

    def _new_row(self) -> int:
        row = len(self._rows) + len(self._free_rows)
        if row >= len(self.used):
            capacity = len(self.used) * _GROWTH
            free = np.full((capacity, len(self.vg_names)), NO_ROOM, dtype=np.int64)
            free[: len(self.free)] = self.free
            self.free = free
            self.used = np.concatenate([self.used, np.zeros(capacity - len(self.used), dtype=np.int64)])
            self.size = np.concatenate([self.size, np.zeros(capacity - len(self.size), dtype=np.int64)])
            self._held.forget()
        return row

    def _add_columns(self, vgs: Iterable[str]) -> None:
        new = [vg for vg in vgs if vg not in self._columns]
        if not new:
            return
        names = sorted({*self.vg_names, *new})
        free = np.full((len(self.free), len(names)), NO_ROOM, dtype=np.int64)
        for old, vg in enumerate(self.vg_names):
            free[:, names.index(vg)] = self.free[:, old]
        self.free, self.vg_names = free, names
        self._columns = {vg: column for column, vg in enumerate(names)}
        self._held.forget()

    def column(self, vg: str) -> int | None:
        return self._columns.get(vg)

    def known_rows(self, nodes: Collection[str]) -> Rows:
        """The rows of those of ``nodes`` that have a report. A pod's wide hold is on the nodes of the
        request that filtered it (or those that passed): their rows are usually still remembered."""
        recent = next(((rows, every) for known, rows, every in self._recent if known == nodes), None)
        rows, every = recent if recent is not None else (self._lookup(nodes), False)
        if every:
            return rows  # shared, as rows_of's are: nobody changes them
        known: Rows = rows[rows != NO_ROW]
        return known


class _HeldLayer:
    """What ``HeldGroups`` hold, laid over the table's rows, carried from one request to the next.

    kube-scheduler's successive requests see nearly the same groups: between two filters one pod
    reserved and another committed. Adding and taking off only the groups that changed costs a few
    array operations per request, where laying every group over the rows again cost one lookup of its
    nodes each. That pays where many pods hold at once: ``bench_extender --pending 30`` at 1000 nodes,
    4.4-5.5 ms of CPU per filter and prioritize before, 1.2-1.6 ms after (docs/extender.md). A group
    is known by its VG bytes and its nodes: a tuple by value, any other collection by identity (the
    ledger makes a new one when a pod's nodes change, and the layer keeps a reference, so an identity
    is not reused while it is known here). The same ``HeldGroups`` object as the last update's (the
    ledger hands out one until its next change) is taken as it is, without comparing its groups.
    """

    def __init__(self, table: CapacityTable) -> None:
        self._table = table
        # Each group's rows are kept to take it off again; int32 on a large cluster, as 200 pods holding
        # on 5000 nodes kept 8 MiB of int64 rows (bench_extender_memory), int64 on a small one, where
        # numpy's conversion of int32 indexes was half the cost of laying a group (100 nodes: 5 of 2 us).
        self._groups: dict[tuple[object, ...], tuple[Sequence[tuple[str, int]], Collection[str], _KeptRows]] = {}
        self.by_column = np.zeros((0, 0), dtype=np.int64)  # [row, column]: bytes held in that VG
        self.elsewhere = np.zeros(0, dtype=np.int64)  # [row]: bytes held in VGs no node reports
        self.held_elsewhere = False  # whether any group holds in such a VG (``elsewhere`` is not all 0)
        self._last: HeldGroups | None = None  # kept, so that its identity is not reused meanwhile

    def forget(self) -> None:
        """Rows or columns changed: lay every group again at the next update."""
        self._groups.clear()
        self._last = None
        self.by_column = np.zeros((0, 0), dtype=np.int64)

    def update(self, held: HeldGroups) -> _HeldLayer:
        """Make the layer hold exactly ``held``; returns itself."""
        if held is self._last:  # filter's room and its failing nodes' reasons ask with the same groups
            return self
        wanted: dict[tuple[object, ...], tuple[Sequence[tuple[str, int]], Collection[str]]] = {}
        for vg_bytes, nodes in held:
            key: tuple[object, ...] = (nodes if isinstance(nodes, tuple) else id(nodes), tuple(vg_bytes))
            while key in wanted:  # the same group twice holds twice
                key = (*key, len(wanted))
            wanted[key] = (vg_bytes, nodes)
        if self.by_column.shape != self._table.free.shape or len(wanted) < len(self._groups) // 2:
            self._groups.clear()
            self.by_column = np.zeros_like(self._table.free)
            self.elsewhere = np.zeros(len(self._table.used), dtype=np.int64)
            self.held_elsewhere = False
        for key in [key for key in self._groups if key not in wanted]:
            vg_bytes, _, rows = self._groups.pop(key)
            self._lay(vg_bytes, rows, -1)
        for key, (vg_bytes, nodes) in wanted.items():
            if key not in self._groups:
                rows = self._table.known_rows(nodes)
                if len(rows) > _COMPACT_ROWS:
                    rows = rows.astype(np.int32)
                self._groups[key] = (vg_bytes, nodes, rows)
                self._lay(vg_bytes, rows, 1)
        self._last = held
        return self

    def _lay(self, vg_bytes: Sequence[tuple[str, int]], rows: _KeptRows, sign: int) -> None:
        for vg, amount in vg_bytes:
            column = self._table.column(vg)
            if column is None:
                self.elsewhere[rows] += sign * amount  # each node once per group: no repeated index
                self.held_elsewhere = True
            else:
                self.by_column[:, column][rows] += sign * amount  # faster than [rows, column]
