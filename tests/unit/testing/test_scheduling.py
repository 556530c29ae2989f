"""The groups xdist schedules and their order: longest first by the duration record, which survives bad files."""

from __future__ import annotations

import math
from pathlib import Path

from localcsi.testing.scheduling import expected_seconds, group_of, load_record, longest_first, save_record


def test_groups_are_the_e2e_tier_the_cluster_tier_each_sanity_run_and_each_other_module() -> None:
    assert group_of("tests/e2e/test_io.py::test_a[v1]") == group_of("tests/e2e/test_volumes.py::test_b") == "e2e"
    assert group_of("tests/cluster/test_rbac.py::test_c") == "cluster"
    assert group_of("sanity/test_csi_sanity.py::test_csi_sanity[thin-block]") == (
        "sanity/test_csi_sanity.py::test_csi_sanity[thin-block]"
    )
    assert group_of("tests/node/lvm/test_x.py::Test::test_c[1]") == "tests/node/lvm/test_x.py"


def test_a_record_that_is_missing_broken_or_not_a_map_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    assert load_record(path) == {}
    path.write_text("{not json")
    assert load_record(path) == {}
    path.write_text("[1, 2]")
    assert load_record(path) == {}
    path.write_text('{"a": 1.5, "b": "slow", "c": 2}')
    assert load_record(path) == {"a": 1.5, "c": 2.0}


def test_saving_merges_and_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "record.json"
    save_record(path, {"a": 1.0, "b": 2.0})
    save_record(path, {"b": 3.456})
    assert load_record(path) == {"a": 1.0, "b": 3.46}
    assert [entry.name for entry in path.parent.iterdir()] == ["record.json"]


def test_a_group_expects_the_sum_of_its_recorded_tests_or_infinity_with_none() -> None:
    ids = ["tests/node/test_a.py::x", "tests/node/test_a.py::y", "tests/node/test_b.py::z"]
    assert expected_seconds(ids, {"tests/node/test_a.py::x": 5.0}) == {
        "tests/node/test_a.py": 5.0,
        "tests/node/test_b.py": math.inf,
    }


def test_longest_groups_first_keeping_each_group_together_and_in_order() -> None:
    ids = [
        "tests/node/test_a.py::1",
        "tests/node/test_b.py::1",
        "tests/node/test_a.py::2",
        "tests/node/test_c.py::1",
        "tests/node/test_d.py::1",
    ]
    record = {"tests/node/test_a.py::1": 10.0, "tests/node/test_b.py::1": 30.0, "tests/node/test_c.py::1": 10.0}
    assert longest_first(ids, str, record) == [
        "tests/node/test_d.py::1",  # nothing recorded: may be long
        "tests/node/test_b.py::1",
        "tests/node/test_a.py::1",
        "tests/node/test_a.py::2",
        "tests/node/test_c.py::1",  # a tie with test_a: collection order
    ]
    assert longest_first(ids, str, {}) == [ids[0], ids[2], ids[1], ids[3], ids[4]], "no record: first-seen order"
