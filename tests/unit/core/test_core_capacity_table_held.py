"""The held layer: what is held, carried from one request to the next, must equal a fresh sum."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduling_factories import cap

from localcsi.core.capacity_table import NO_ROW, CapacityTable

pytestmark = pytest.mark.unit

NODES = ("a", "b", "c", "d", "e")
VGS = ("vg0", "vg1", "vg-elsewhere")  # vg-elsewhere: no node reports it, so it has no column

Group = tuple[Sequence[tuple[str, int]], Collection[str]]


def known_room(table: CapacityTable, rows: np.ndarray, held: Sequence[Group]) -> list[list[int]]:
    """room()'s rows of reported nodes (the caller masks out the others)."""
    return [line for line, row in zip(table.room(rows, held).tolist(), rows.tolist(), strict=True) if row != NO_ROW]


def fresh_room(table: CapacityTable, rows: np.ndarray, held: Sequence[Group]) -> list[list[int]]:
    """What room() must give for reported nodes: every group laid over the rows anew, with plain loops."""
    room = table.free[rows[rows != NO_ROW]].copy()
    for vg_bytes, nodes in held:
        for vg, amount in vg_bytes:
            if vg not in table.vg_names:
                continue
            column = table.vg_names.index(vg)
            for position, row in enumerate(rows[rows != NO_ROW].tolist()):
                if any(table.rows_of([node]).tolist() == [row] for node in set(nodes)):
                    room[position, column] -= amount
    expected: list[list[int]] = room.tolist()
    return expected


def fresh_per_row(table: CapacityTable, held: Sequence[Group]) -> list[int]:
    out = [0] * len(table.used)
    for vg_bytes, nodes in held:
        for node in set(nodes):
            (row,) = table.rows_of([node]).tolist()
            if row != NO_ROW:
                out[row] += sum(amount for _, amount in vg_bytes)
    return out


groups = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(VGS), st.integers(1, 1 << 40)), min_size=1, max_size=2, unique_by=lambda p: p[0]
        ),
        st.lists(st.sampled_from((*NODES, "unreported")), min_size=1, max_size=4, unique=True),
        st.booleans(),  # the nodes as a tuple (known by value) or a list (by identity)
    ),
    max_size=6,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.lists(st.integers(0, 5), max_size=6), groups),
        st.tuples(st.just("report"), st.sampled_from(NODES), st.sampled_from(("vg0", "vg1", "vg2"))),
        st.tuples(st.just("drop"), st.sampled_from(NODES), st.none()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_room_and_held_per_row_equal_a_fresh_sum_after_any_request_sequence(script: list[tuple[Any, Any, Any]]) -> None:
    table = CapacityTable()
    for node in NODES[:3]:
        table.set(cap(10, 20, node=node))
    previous: list[Group] = []
    for action, first, second in script:
        if action == "report":
            table.set(cap(30, node=first, names=(second,)))
            continue
        if action == "drop":
            table.drop(first)
            continue
        # a request: some groups kept from the last one (the same objects, as the ledger keeps them)
        kept = [previous[i] for i in first if i < len(previous)]
        made: list[Group] = [
            (vg_bytes, tuple(nodes) if as_tuple else list(nodes)) for vg_bytes, nodes, as_tuple in second
        ]
        held = kept + made
        rows = table.rows_of([*NODES, "unreported"])
        assert known_room(table, rows, held) == fresh_room(table, rows, held)
        fresh = fresh_per_row(table, held)
        on_rows = table.held_on(rows, held).tolist()
        assert [on for row, on in zip(rows.tolist(), on_rows, strict=True) if row != NO_ROW] == [
            fresh[row] for row in rows.tolist() if row != NO_ROW
        ]
        previous = held


def test_a_group_given_twice_holds_twice_and_a_group_gone_holds_nothing() -> None:
    table = CapacityTable()
    table.set(cap(10, node="a"))
    rows = table.rows_of(["a"])
    group: Group = ((("vg0", 3),), ("a",))
    assert table.room(rows, [group, group]).tolist() == [[table.free[rows[0], 0] - 6]]
    assert table.room(rows, [group]).tolist() == [[table.free[rows[0], 0] - 3]]
    other: Group = ((("vg0", 1),), ["a"])
    assert table.held_on(rows, [other]).tolist() == [1]
    assert table.room(rows, []).tolist() == [[table.free[rows[0], 0]]]


def test_held_by_vg_names_the_vgs_with_a_column_and_sums_the_others() -> None:
    table = CapacityTable()
    table.set(cap(10, node="a"))
    table.set(cap(10, 10, node="b"))
    held: list[Group] = [
        ((("vg0", 3), ("vg-elsewhere", 2)), ["a", "b"]),
        ((("vg1", 5),), ("b",)),
    ]
    rows = table.rows_of(["b", "a"])
    assert table.held_by_vg(rows, held) == [({"vg0": 3, "vg1": 5}, 2), ({"vg0": 3}, 2)]
    assert table.held_by_vg(rows, []) == [({}, 0), ({}, 0)]
