"""How tests are laid out and ordered. Test files have no __init__.py, so pytest and mypy key them by
basename: two of the same name break collection of the whole tier; catch that here, before a tier
does. And the root conftest's ordering of tests marked ``last``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(path.name for folder in ("tests", "sanity", "benchmarks") for path in (ROOT / folder).rglob("*.py"))
    assert [name for name, count in names.items() if count > 1 and name != "__init__.py"] == []


def test_tests_marked_last_run_after_the_others_in_their_order(pytestconfig: pytest.Config) -> None:
    """The root conftest moves ``last`` tests to the end (the e2e IO module leaves a cgroup v1 node)."""
    import conftest  # noqa: PLC0415 - the repository's root conftest, on pythonpath "."

    class Item:
        def __init__(self, name: str, last: bool) -> None:
            self.name, self.last = name, last
            self.path = Path(pytestconfig.rootpath) / "tests" / "e2e" / f"test_{name}.py"

        def iter_markers(self, name: str) -> list[object]:
            return [object()] if (name == "last" and self.last) or name == "e2e" else []

        def add_marker(self, marker: object) -> None:
            raise AssertionError("already marked")

    items = [Item("io1", True), Item("a", False), Item("io2", True), Item("b", False)]
    conftest.pytest_collection_modifyitems(pytestconfig, items)  # type: ignore[arg-type]
    assert [item.name for item in items] == ["a", "b", "io1", "io2"]
