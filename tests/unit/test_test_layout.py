"""How tests are laid out and ordered. Test files have no __init__.py, so pytest and mypy key them by
basename: two of the same name break collection of the whole tier; catch that here, before a tier
does. And the root conftest's ordering of tests marked ``last``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(path.name for folder in ("tests", "sanity", "benchmarks") for path in (ROOT / folder).rglob("*.py"))
    assert [name for name, count in names.items() if count > 1 and name != "__init__.py"] == []


class FakeItem:
    """The parts of a pytest item the root conftest reads and writes."""

    def __init__(self, root: Path, path: str, *marks: str, test: str = "test_it") -> None:
        self.path = root / path
        self.nodeid = f"{path}::{test}"
        self.marks: dict[str, tuple[object, ...]] = {mark: () for mark in marks}

    @property
    def name(self) -> str:
        return self.path.stem.removeprefix("test_")

    def iter_markers(self, name: str) -> list[object]:
        return [object()] if name in self.marks else []

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name in self.marks else None

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        assert marker.name not in self.marks, f"{marker.name} added twice"
        self.marks[marker.name] = marker.args


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache with no duration record, unless a test writes one: the order then is the tiers' alone."""
    monkeypatch.setenv("LOCALCSI_CACHE", str(tmp_path))


class FakeReport:
    def __init__(self, nodeid: str, duration: float) -> None:
        self.nodeid = nodeid
        self.duration = duration


def _order(pytestconfig: pytest.Config, items: list[FakeItem]) -> list[FakeItem]:
    import conftest  # noqa: PLC0415 - the repository's root conftest, on pythonpath "."

    conftest.pytest_collection_modifyitems(pytestconfig, items)  # type: ignore[arg-type]
    return items


def test_tests_marked_last_run_after_the_others_in_their_order(pytestconfig: pytest.Config) -> None:
    """The root conftest moves ``last`` tests to the end of their tier (the e2e IO module leaves a cgroup v1 node)."""
    root = Path(pytestconfig.rootpath)
    names = ["io1", "a", "io2", "b"]
    items = [FakeItem(root, f"tests/e2e/test_{name}.py", *(["last"] if "io" in name else [])) for name in names]
    assert [item.name for item in _order(pytestconfig, items)] == ["a", "b", "io1", "io2"]


def test_e2e_runs_first_and_is_one_group_while_each_other_module_is_its_own(pytestconfig: pytest.Config) -> None:
    """What the `vm` tox env schedules by: one worker takes the whole e2e tier at once, the other starts on
    csi-sanity and the cluster tier (one group, one control plane), then node modules."""
    import conftest  # noqa: PLC0415 - the repository's root conftest, on pythonpath "."

    root = Path(pytestconfig.rootpath)
    items = [
        FakeItem(root, "sanity/test_sanity.py"),
        FakeItem(root, "tests/cluster/test_crd.py"),
        FakeItem(root, "tests/node/lvm/test_x.py"),
        FakeItem(root, "tests/e2e/test_io.py", "last"),
        FakeItem(root, "tests/e2e/test_volumes.py"),
        FakeItem(root, "tests/unit/test_pure.py"),
    ]
    ordered = _order(pytestconfig, items)
    assert [item.name for item in ordered] == ["volumes", "io", "sanity", "crd", "x", "pure"]
    assert [next(m for m in item.marks if m in ("unit", "node", "sanity", "cluster", "e2e")) for item in ordered] == [
        "e2e", "e2e", "sanity", "cluster", "node", "unit",
    ]  # fmt: skip
    groups = object.__new__(conftest.TierGroups)  # _split_scope reads nothing of the scheduler's state
    assert groups._split_scope("tests/e2e/test_io.py::test_a[v1]") == "e2e"
    assert groups._split_scope("tests/e2e/test_volumes.py::test_b") == "e2e"
    assert groups._split_scope("tests/cluster/test_rbac.py::test_c") == "cluster"
    assert groups._split_scope("tests/cluster/test_agent_vm.py::test_d[x]") == "cluster"
    thick = "sanity/test_csi_sanity.py::test_csi_sanity[thick-mount]"
    assert groups._split_scope(thick) == thick, "each csi-sanity run is its own group, so both workers take one"
    assert groups._split_scope("tests/node/lvm/test_x.py::Test::test_c") == "tests/node/lvm/test_x.py"


def test_with_a_record_the_longest_groups_go_first_and_each_run_is_recorded(pytestconfig: pytest.Config) -> None:
    """The node tier's modules by recorded seconds, longest first; a module with no record goes before
    them; and the recorder writes what a run took, so the next run orders by it."""
    import conftest  # noqa: PLC0415 - the repository's root conftest, on pythonpath "."
    from localcsi.testing.scheduling import load_record, record_path, save_record  # noqa: PLC0415

    root = Path(pytestconfig.rootpath)
    items = [
        FakeItem(root, "tests/node/test_short.py", test="test_a"),
        FakeItem(root, "tests/node/test_short.py", test="test_b"),
        FakeItem(root, "tests/node/test_long.py"),
        FakeItem(root, "tests/node/test_new.py"),
        FakeItem(root, "sanity/test_sanity.py", test="test_run[thin]"),
    ]
    save_record(
        record_path(),
        {
            "tests/node/test_short.py::test_a": 50.0,
            "tests/node/test_short.py::test_b": 60.0,
            "tests/node/test_long.py::test_it": 100.0,
            "sanity/test_sanity.py::test_run[thin]": 300.0,
        },
    )
    assert [item.nodeid for item in _order(pytestconfig, items)] == [
        "tests/node/test_new.py::test_it",
        "sanity/test_sanity.py::test_run[thin]",
        "tests/node/test_short.py::test_a",
        "tests/node/test_short.py::test_b",
        "tests/node/test_long.py::test_it",
    ]

    recorder = conftest.DurationRecorder()
    for phase_seconds in (1.5, 20.0, 0.5):  # setup, call, teardown
        recorder.pytest_runtest_logreport(FakeReport("tests/node/test_new.py::test_it", phase_seconds))  # type: ignore[arg-type]
    recorder.pytest_runtest_logreport(FakeReport("tests/unit/test_pure.py::test_it", 1.0))  # type: ignore[arg-type]
    recorder.pytest_sessionfinish()
    record = load_record(record_path())
    assert record["tests/node/test_new.py::test_it"] == 22.0
    assert record["tests/node/test_long.py::test_it"] == 100.0, "tests this run did not run keep their record"
    assert "tests/unit/test_pure.py::test_it" not in record, "unit tests are not scheduled in groups"


def test_a_worker_running_other_tiers_yields_the_cpu_to_one_running_the_e2e_tier(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conftest  # noqa: PLC0415 - the repository's root conftest, on pythonpath "."

    priority = [0]
    monkeypatch.setattr(os, "getpriority", lambda which, who: priority[0])

    def nice(increment: int) -> int:
        priority[0] += increment
        return priority[0]

    monkeypatch.setattr(os, "nice", nice)
    root = Path(pytestconfig.rootpath)
    conftest.pytest_runtest_setup(FakeItem(root, "tests/e2e/test_volumes.py", "e2e"))  # type: ignore[arg-type]
    assert priority == [0], "an e2e test keeps its priority"
    conftest.pytest_runtest_setup(FakeItem(root, "tests/node/lvm/test_x.py", "node"))  # type: ignore[arg-type]
    assert priority == [conftest.YIELD_TO_E2E]
    conftest.pytest_runtest_setup(FakeItem(root, "tests/cluster/test_crd.py", "cluster"))  # type: ignore[arg-type]
    assert priority == [conftest.YIELD_TO_E2E], "once is enough"
