"""The core's one-way layering, as docs/architecture.md states it: the standard library, numpy (the
extender's array-form scheduling) and the core itself; no adapter, gRPC, Kubernetes or subprocess."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import localcsi.core

pytestmark = pytest.mark.unit

CORE = Path(localcsi.core.__file__).parent
NUMPY_USERS = {"capacity_table.py", "scheduling_fit.py", "scheduling_score.py"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "") if node.level == 0 else "localcsi.core")  # relative: the core
    return found


def package(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def outside(module: str) -> bool:
    return not (module.startswith("localcsi.core") or package(module) in sys.stdlib_module_names)


def test_the_core_imports_only_the_standard_library_numpy_and_itself() -> None:
    foreign = {path.name: {package(m) for m in imports(path) if outside(m)} for path in sorted(CORE.glob("*.py"))}
    assert {name: packages - {"numpy"} for name, packages in foreign.items() if packages - {"numpy"}} == {}
    assert {name for name, packages in foreign.items() if packages} == NUMPY_USERS, "update docs/architecture.md"
    assert not any("subprocess" in imports(path) for path in CORE.glob("*.py")), "the core runs no command"
