"""The one-way layering of the bottom layers, as docs/architecture.md states it. The core: the standard
library, numpy (the extender's array-form scheduling) and the core itself; no adapter, gRPC, Kubernetes
or subprocess. The typed resources (``localcsi.resources``): the standard library, the core and
themselves."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import localcsi.core
import localcsi.resources

pytestmark = pytest.mark.unit

CORE = Path(localcsi.core.__file__).parent
RESOURCES = Path(localcsi.resources.__file__).parent
NUMPY_USERS = {"capacity_table.py", "scheduling_fit.py", "scheduling_score.py"}


def imports(path: Path, package_name: str = "localcsi.core") -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "") if node.level == 0 else package_name  # relative: the package itself
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # from a.b import c: a.b.c too
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


def test_the_resources_import_only_the_standard_library_the_core_and_themselves() -> None:
    allowed = ("localcsi.core", "localcsi.resources")
    foreign = {
        path.name: sorted(m for m in imports(path, "localcsi.resources") if outside(m) and not m.startswith(allowed))
        for path in sorted(RESOURCES.glob("*.py"))
    }
    assert {name: found for name, found in foreign.items() if found} == {}, "see docs/architecture.md"
    assert not any("localcsi.resources" in m for path in CORE.glob("*.py") for m in imports(path)), "core is below"


def test_the_agent_takes_the_logicalvolume_schema_from_the_resources_not_the_driver() -> None:
    """The agent executes plans with the driver's backend on purpose; the schema is not the driver's."""
    agent = CORE.parent / "agent"
    users = {path.name for path in agent.glob("*.py") if any("cluster_resources" in m for m in imports(path))}
    assert users == set(), f"{sorted(users)} import localcsi.driver.cluster_resources"


PROCESSES = ("localcsi.agent", "localcsi.controller", "localcsi.extender", "localcsi.webhook")
BELOW_THE_PROCESSES = ("core", "resources", "driver", "fs", "lvm", "cgroup", "k8s")


def test_nothing_below_the_processes_imports_one_of_them() -> None:
    """The agent, controller, extender and webhook sit on top: the driver and the adapters are shared
    with them, never the other way round (the driver once took lsblk's parser from the agent)."""
    root = CORE.parent
    found = {
        f"{layer}/{path.relative_to(root / layer)}": sorted(
            m for m in imports(path, f"localcsi.{layer}") if m.startswith(PROCESSES)
        )
        for layer in BELOW_THE_PROCESSES
        for path in sorted((root / layer).rglob("*.py"))
    }
    assert {name: modules for name, modules in found.items() if modules} == {}, "see docs/architecture.md"
