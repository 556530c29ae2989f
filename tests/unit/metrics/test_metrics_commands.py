"""Every command SubprocessRunner runs is timed and its failures counted, by program name only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from localcsi.lvm.runner import CommandFailed, CommandTimedOut, SubprocessRunner
from localcsi.metrics.commands import program

pytestmark = pytest.mark.unit


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["lvcreate", "-n", "x"], "lvcreate"),
        (["/usr/sbin/mkfs.ext4", "/dev/x"], "mkfs.ext4"),
        (["nsenter", "--target", "1", "--mount", "--", "lvm", "fullreport"], "lvm"),
        (["nsenter", "--target", "1"], "nsenter"),
    ],
)
def test_the_label_is_the_program_past_nsenter(argv: list[str], name: str) -> None:
    assert program(argv) == name


def fake_program(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_success_failure_timeout_and_exec_failure_are_counted(tmp_path: Path) -> None:
    ok = fake_program(tmp_path, "lvs", "print('ok')")
    bad = fake_program(tmp_path, "lvcreate", "import sys; sys.exit(5)")
    slow = fake_program(tmp_path, "mkfs.xfs", "import time; time.sleep(30)")
    before = {
        "count": sample("localcsi_command_duration_seconds_count", command="lvs"),
        "exit": sample("localcsi_command_failures_total", command="lvcreate", reason="exit"),
        "timeout": sample("localcsi_command_failures_total", command="mkfs.xfs", reason="timeout"),
        "exec": sample("localcsi_command_failures_total", command="no-such-program", reason="exec"),
        "ok": sample("localcsi_command_failures_total", command="lvs", reason="exit"),
    }
    runner = SubprocessRunner(timeout=0.5)
    runner.run([ok])
    runner.run([ok])
    with pytest.raises(CommandFailed):
        runner.run([bad, "--name", "pvc-1234"])
    with pytest.raises(CommandTimedOut):
        runner.run([slow])
    with pytest.raises(CommandFailed):
        runner.run([str(tmp_path / "no-such-program")])
    assert sample("localcsi_command_duration_seconds_count", command="lvs") == before["count"] + 2
    assert sample("localcsi_command_failures_total", command="lvcreate", reason="exit") == before["exit"] + 1
    assert sample("localcsi_command_failures_total", command="mkfs.xfs", reason="timeout") == before["timeout"] + 1
    assert sample("localcsi_command_failures_total", command="no-such-program", reason="exec") == before["exec"] + 1
    assert sample("localcsi_command_failures_total", command="lvs", reason="exit") == before["ok"]
    assert sample("localcsi_command_duration_seconds_sum", command="mkfs.xfs") >= 0.5
    exposed = {
        s.labels.get("command") for m in REGISTRY.collect() for s in m.samples if m.name.startswith("localcsi_command")
    }
    assert not [label for label in exposed if label and ("/" in label or " " in label)], "argv leaked into a label"
