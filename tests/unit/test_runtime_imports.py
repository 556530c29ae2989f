"""The components do not import the official ``kubernetes`` client: importing it costs about 60 MiB of
RSS (every API and model class), more than issue 16 allows the agent and the plugin in all. Each module is
imported in a fresh interpreter, as a component's process starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from localcsi.cli import COMMAND_RUNNERS

pytestmark = pytest.mark.unit

# every subcommand's module, and what the plugin imports later in cluster mode or in a pod
ENTRY_POINTS = (
    "localcsi.cli",
    *sorted({runner.partition(":")[0] for runner in COMMAND_RUNNERS.values()}),
    "localcsi.driver.cluster_backend",
    "localcsi.k8s.client",
    "localcsi.k8s.events",
)
REPORT = """\
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("kubernetes", "localcsi"))))
"""


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_a_component_imports_no_official_kubernetes_client(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", REPORT, module], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    imported = json.loads(proc.stdout)
    assert module in imported  # the import did happen, in this interpreter
    assert [name for name in imported if name.split(".")[0] == "kubernetes"] == []
    assert [name for name in imported if name.startswith("localcsi.testing")] == []
