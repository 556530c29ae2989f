"""The agent process: what wakes a cycle, and refusing to start half-built or without API access."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from localcsi import cli
from localcsi.agent import main
from localcsi.agent.main import SpecChanges

pytestmark = pytest.mark.unit


def nls(generation: int, resource_version: str) -> dict[str, object]:
    return {"metadata": {"name": "node-1", "generation": generation, "resourceVersion": resource_version}}


def test_a_spec_change_wakes_the_loop_and_a_status_write_does_not() -> None:
    changes = SpecChanges()
    changes("ADDED", nls(1, "10"))
    assert changes.wake.is_set()
    changes.wake.clear()
    changes("MODIFIED", nls(1, "11"))  # our own status write: same generation
    assert not changes.wake.is_set()
    changes("MODIFIED", nls(2, "12"))
    assert changes.wake.is_set()
    changes.wake.clear()
    changes("DELETED", nls(2, "13"))
    assert changes.wake.is_set()


def args(kubeconfig: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["agent", "--node-name", "node-1", "--kubeconfig", kubeconfig])


def test_an_unreadable_kubeconfig_is_exit_status_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main.run(args(str(tmp_path / "missing-kubeconfig"))) == 1
    assert "cannot build a Kubernetes client" in caplog.text


def test_exclusive_volumes_see_the_listconfig_of_the_last_seen_spec() -> None:
    class Seen:
        def __init__(self) -> None:
            self.objects: dict[str, dict[str, object]] = {}

        def get(self, name: str) -> dict[str, object] | None:
            return self.objects.get(name)

    seen = Seen()
    spec = main.own_spec(seen, "node-1")  # type: ignore[arg-type]  # only get() is read
    assert not spec().devices.accepts("/dev/vdb"), "no NodeLocalStorage yet: nothing is given"
    seen.objects["node-1"] = {"spec": {"listConfig": {"devices": {"include": ["^/dev/vd[bc]$"]}}}}
    assert spec().devices.accepts("/dev/vdb") and not spec().devices.accepts("/dev/vdd")
    assert not spec().mount_points.accepts("/mnt/a")
