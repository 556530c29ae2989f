"""Test files have no __init__.py, so pytest and mypy key them by basename: two of the same name
break collection of the whole tier. Catch that here, before a tier does."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(path.name for folder in ("tests", "sanity", "benchmarks") for path in (ROOT / folder).rglob("*.py"))
    assert [name for name, count in names.items() if count > 1 and name != "__init__.py"] == []
