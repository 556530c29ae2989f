import numpy as np
import pytest
from scheduling_factories import cap

from localcsi.core.capacity_table import NO_ROOM, NO_ROW, CapacityTable, HeldGroups
from localcsi.core.scheduling import NodeReport, VgReport, node_capacity
from localcsi.core.sizes import GiB

pytestmark = pytest.mark.unit


def room(table: CapacityTable, node: str) -> dict[str, int]:
    """The node's row as {VG: free}, leaving out the VGs it does not have."""
    (row,) = table.rows_of([node]).tolist()
    assert row != NO_ROW
    return {vg: int(free) for vg, free in zip(table.vg_names, table.free[row].tolist(), strict=True) if free != NO_ROOM}


def test_a_reported_node_gets_a_row_with_its_room_and_an_unreported_one_none() -> None:
    table = CapacityTable()
    table.set(cap(10, 20, node="a", names=("vg-a", "vg-b")))
    table.set(cap(5, node="b", names=("vg-b",)))
    assert len(table) == 2
    rows = table.rows_of(["a", "x", "b"]).tolist()
    assert rows[1] == NO_ROW
    assert rows[0] != rows[2] and NO_ROW not in (rows[0], rows[2])
    assert room(table, "a") == {"vg-a": 10 * GiB, "vg-b": 20 * GiB}
    assert room(table, "b") == {"vg-b": 5 * GiB}
    assert (table.size[rows[0]], table.used[rows[0]]) == (200 * GiB, 170 * GiB)
    assert (table.size[rows[2]], table.used[rows[2]]) == (100 * GiB, 95 * GiB)
    assert table.rows_of([]).tolist() == []


def test_an_empty_table_knows_no_node() -> None:
    table = CapacityTable()
    assert len(table) == 0 and table.vg_names == []
    assert table.rows_of(["a", "b"]).tolist() == [NO_ROW, NO_ROW]
    held = table.held_on(table.rows_of(["a", "b"]), [((("vg", 1),), ["a"])])
    assert held.tolist() == [0, 0]


def test_a_node_without_usable_vgs_has_a_row_with_no_room_anywhere() -> None:
    table = CapacityTable()
    table.set(cap(10, node="a", names=("vg-a",)))
    broken = NodeReport("b", (VgReport("vg-a", 10 * GiB, 10 * GiB, "condition DiskFault"),))
    table.set(node_capacity(broken, []))
    table.set(cap(node="c"))
    assert table.vg_names == ["vg-a"]  # a VG known only as broken is no column
    for node in ("b", "c"):
        (row,) = table.rows_of([node]).tolist()
        assert row != NO_ROW
        assert (table.free[row] == NO_ROOM).all()
        assert (table.size[row], table.used[row]) == (0, 0)


def test_columns_are_in_vg_name_order_and_keep_their_values_when_a_vg_is_added() -> None:
    table = CapacityTable()
    table.set(cap(1, 2, node="a", names=("vg-m", "vg-c")))
    assert table.vg_names == ["vg-c", "vg-m"]
    table.set(cap(3, 4, node="b", names=("vg-z", "vg-a")))  # one column before, one after
    assert table.vg_names == ["vg-a", "vg-c", "vg-m", "vg-z"]
    assert room(table, "a") == {"vg-m": GiB, "vg-c": 2 * GiB}
    assert room(table, "b") == {"vg-z": 3 * GiB, "vg-a": 4 * GiB}
    (row,) = table.rows_of(["a"]).tolist()
    assert table.free[row].tolist() == [NO_ROOM, 2 * GiB, GiB, NO_ROOM]


def test_rows_and_columns_survive_growth() -> None:
    table = CapacityTable()
    for i in range(40):  # past the first allocation of 16 rows, and its double
        table.set(cap(i, node=f"n{i}", names=(f"vg-{i % 7}",)))
    table.set(cap(99, node="late", names=("vg-0a",)))  # a column inserted in the middle afterwards
    assert len(table) == 41
    assert len(set(table.rows_of([f"n{i}" for i in range(40)]).tolist())) == 40
    for i in range(40):
        assert room(table, f"n{i}") == {f"vg-{i % 7}": i * GiB}
    assert room(table, "late") == {"vg-0a": 99 * GiB}


def test_setting_a_node_again_replaces_its_whole_row() -> None:
    table = CapacityTable()
    table.set(cap(10, 20, node="a", names=("vg-a", "vg-b")))
    (before,) = table.rows_of(["a"]).tolist()
    table.set(cap(7, node="a", names=("vg-b",)))
    assert table.rows_of(["a"]).tolist() == [before]
    assert len(table) == 1
    assert room(table, "a") == {"vg-b": 7 * GiB}  # vg-a is gone, not left at its old value
    assert (table.size[before], table.used[before]) == (100 * GiB, 93 * GiB)


def test_a_dropped_nodes_row_is_blanked_and_given_to_the_next_new_node() -> None:
    table = CapacityTable()
    table.set(cap(10, node="a", names=("vg-a",)))
    table.set(cap(20, node="b", names=("vg-a",)))
    (row_a,) = table.rows_of(["a"]).tolist()
    table.drop("a")
    table.drop("a")  # twice, or a node never seen: nothing happens
    table.drop("never")
    assert len(table) == 1
    assert table.rows_of(["a"]).tolist() == [NO_ROW]
    assert (table.free[row_a] == NO_ROOM).all()
    assert (table.size[row_a], table.used[row_a]) == (0, 0)
    table.set(cap(30, node="c", names=("vg-b",)))
    assert table.rows_of(["c"]).tolist() == [row_a]
    assert room(table, "c") == {"vg-b": 30 * GiB}  # nothing of a's left in the reused row
    assert room(table, "b") == {"vg-a": 20 * GiB}


def test_remembered_rows_are_forgotten_when_a_node_comes_or_goes() -> None:
    table = CapacityTable()
    table.set(cap(10, node="a"))
    table.set(cap(10, node="b"))
    request = ["a", "b", "c"]
    first = table.rows_of(request)
    assert table.rows_of(list(request)) is first  # an equal list of new strings is recognised
    row_a, row_b, _ = first.tolist()

    table.set(cap(10, node="c"))
    added = table.rows_of(list(request)).tolist()
    assert added[:2] == [row_a, row_b] and added[2] not in (NO_ROW, row_a, row_b)

    table.drop("a")
    assert table.rows_of(list(request)).tolist() == [NO_ROW, row_b, added[2]]

    table.set(cap(10, node="d"))  # takes a's row: the old rows of ["a", ...] must not come back
    assert table.rows_of(["d", "a"]).tolist() == [row_a, NO_ROW]
    assert table.rows_of(list(request)).tolist() == [NO_ROW, row_b, added[2]]


def test_a_changed_report_of_a_known_node_keeps_the_remembered_rows_valid() -> None:
    table = CapacityTable()
    table.set(cap(10, node="a"))
    rows = table.rows_of(["a", "b"])
    table.set(cap(1, node="a"))  # same node, new numbers: its row is unchanged
    assert table.rows_of(["a", "b"]).tolist() == rows.tolist()


def test_the_last_two_requests_are_remembered_and_a_changed_caller_list_is_not_confused() -> None:
    table = CapacityTable()
    for node in ("a", "b", "c"):
        table.set(cap(10, node=node))
    filtered, prioritized = ["a", "b", "c"], ["c", "a"]
    one = table.rows_of(filtered)
    two = table.rows_of(prioritized)
    assert table.rows_of(["a", "b", "c"]) is one
    assert table.rows_of(["c", "a"]) is two
    assert table.rows_of(["b"]).tolist() == table.rows_of(["a", "b", "c"]).tolist()[1:2]
    # the remembered names are a copy: growing the caller's list afterwards gives its new rows
    filtered.append("zzz")
    assert table.rows_of(filtered).tolist() == [*one.tolist(), NO_ROW]
    # a tuple of the same names gives the same rows
    assert table.rows_of(("c", "a")).tolist() == two.tolist()


def test_held_on_sums_every_group_over_all_its_vgs_ignoring_unknown_names() -> None:
    table = CapacityTable()
    for node in ("a", "b", "c"):
        table.set(cap(10, node=node))
    table.drop("b")
    rows = table.rows_of(["c", "a"])
    held = [
        ((("vg0", 5), ("vg-elsewhere", 2)), ["x", "a", "b"]),  # every VG counts, even one without a column
        ((("vg0", 3),), ["a", "c"]),
    ]
    values = table.held_on(rows, held)
    assert values.dtype == np.int64 and values.tolist() == [3, 10]
    assert table.held_on(rows, []).tolist() == [0, 0]
    assert table.held_on(rows, [((("vg0", 1),), ["x", "y"])]).tolist() == [0, 0]
    table.set(cap(10, node="d", names=("vg1",)))  # a second column: the rows' VGs are summed
    rows = table.rows_of(["a", "d"])
    two_vgs: HeldGroups = [((("vg0", 5), ("vg1", 7)), ["a", "d"]), ((("vg1", 1),), ("a",))]
    assert table.held_on(rows, two_vgs).tolist() == [13, 12]


def test_room_takes_off_what_every_group_holds_on_each_node() -> None:
    table = CapacityTable()
    table.set(cap(10, 20, node="a", names=("vg-a", "vg-b")))
    table.set(cap(5, node="b", names=("vg-b",)))
    table.set(cap(7, node="c", names=("vg-a",)))
    rows = table.rows_of(["c", "a", "x", "b"])
    held = [
        ((("vg-a", 2 * GiB),), ["a", "c", "gone"]),  # one pod's hold on three nodes, one unreported
        ((("vg-b", 1 * GiB), ("vg-z", 9 * GiB)), ["a", "b"]),  # vg-z: no node has it, no column
        ((("vg-a", 3 * GiB),), ["a"]),  # a second group on a: the two add up
    ]
    before = table.free.copy()
    got = table.room(rows, held)
    column = {vg: i for i, vg in enumerate(table.vg_names)}
    assert got[0, column["vg-a"]] == 5 * GiB  # c: 7 - 2
    assert (got[1, column["vg-a"]], got[1, column["vg-b"]]) == (5 * GiB, 19 * GiB)  # a: 10 - 2 - 3, 20 - 1
    assert got[3, column["vg-b"]] == 4 * GiB  # b: 5 - 1
    assert got[3, column["vg-a"]] < 0 and got[0, column["vg-b"]] < 0  # VGs they lack stay unusable
    assert (table.free == before).all()  # a new array: the table itself is untouched
    assert (table.room(rows, []) == table.free[np.where(rows != NO_ROW, rows, 0)]).all()
