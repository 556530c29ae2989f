"""Rows remembered for repeated node lists (``CapacityTable.rows_of`` and ``remember``) and ``pick``."""

from __future__ import annotations

import numpy as np
import pytest

from localcsi.core.capacity_table import NO_ROW, CapacityTable, pick
from localcsi.core.scheduling import NodeCapacity

pytestmark = pytest.mark.unit


def table_of(*nodes: str) -> CapacityTable:
    table = CapacityTable()
    for node in nodes:
        table.set(NodeCapacity(node, {"vg": 1 << 30}, {}, (), {}, 1 << 30, 1 << 30))
    return table


def test_remembered_rows_are_what_a_lookup_gives_and_filter_and_prioritize_lists_both_stay() -> None:
    table = table_of("a", "b", "c")
    everyone = ["a", "b", "c", "gone"]
    rows = table.rows_of(everyone)
    assert rows.tolist() == [*table_of("a", "b", "c").rows_of(["a", "b", "c"]).tolist(), NO_ROW]
    passed = ["a", "c"]
    table.remember(passed, rows[np.array([True, False, True, False])])
    assert table.rows_of(list(passed)).tolist() == [rows[0], rows[2]]
    assert table.rows_of(everyone) is rows  # filter's list was not pushed out by prioritize's
    table.remember(["b"], rows[1:2])
    assert table.rows_of(["b"]).tolist() == [rows[1]]
    assert table.rows_of(everyone) is rows


def test_a_new_node_forgets_remembered_rows() -> None:
    table = table_of("a", "b")
    table.remember(["a"], np.array([7]))  # a wrong row would be given back until the table changes
    table.set(NodeCapacity("new", {"vg": 1}, {}, (), {}, 1, 1))
    assert table.rows_of(["a"]).tolist() == table_of("a", "b").rows_of(["a"]).tolist()


def test_pick() -> None:
    names = ["n0", "n1", "n2", "n3"]
    assert pick(names, []) == []
    assert pick(names, [2]) == ["n2"]
    assert pick(names, [3, 0, 1]) == ["n3", "n0", "n1"]


def test_whether_every_row_has_a_report_is_remembered_with_the_rows() -> None:
    table = table_of("a", "b")
    known, partly = table.rows_of(["a", "b"]), table.rows_of(["b", "gone"])
    assert table.all_reported(known) and not table.all_reported(partly)
    assert table.all_reported(known.copy()) and not table.all_reported(partly.copy())  # looked at, not remembered
    assert table.known_rows(["a", "b"]) is known  # nothing to leave out: shared
    assert table.known_rows(["b", "gone"]).tolist() == [partly[0]]
    table.remember(["b"], partly[:1])
    assert table.all_reported(table.rows_of(["b"]))


def test_all_sized_follows_nodes_without_a_usable_vg_as_they_come_change_and_go() -> None:
    table = table_of("a")
    assert table.all_sized
    table.set(NodeCapacity("bare", {}, {}, (), {}, 0, 0))
    assert not table.all_sized
    table.set(NodeCapacity("bare", {"vg": 1 << 30}, {}, (), {}, 1 << 30, 1 << 30))
    assert table.all_sized
    table.set(NodeCapacity("bare", {}, {}, (), {}, 0, 0))
    table.drop("bare")
    assert table.all_sized
