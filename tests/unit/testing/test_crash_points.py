"""The crash points' stand-in, run on the host: unarmed it runs the real command; armed it kills its
parent at the first matching call, after ``skip`` matching calls when asked, and disarms itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from localcsi.testing.crash_points import shim

PARENT = "import subprocess, sys; done = subprocess.run(sys.argv[1:]); print('parent lived', done.returncode)"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    shims, armed, real = tmp_path / "shims", tmp_path / "armed", tmp_path / "real"
    for directory in (shims, armed, real):
        directory.mkdir()
    (shims / "lvs").write_text(shim(str(shims), str(armed)))
    (real / "lvs").write_text(f"#!{sys.executable}\nimport sys\nprint('real lvs', *sys.argv[1:])\n")
    (real / "lvs").chmod(0o755)
    return shims, armed, real


def run(dirs: tuple[Path, Path, Path], *args: str) -> subprocess.CompletedProcess[str]:
    """The stand-in run by a parent process of its own, which it may kill."""
    shims, _, real = dirs
    argv = [sys.executable, "-c", PARENT, sys.executable, str(shims / "lvs"), *args]
    return subprocess.run(
        argv, check=False, capture_output=True, text=True, env={"PATH": f"{shims}:{real}"}, timeout=60
    )


def test_unarmed_it_runs_the_real_command(dirs: tuple[Path, Path, Path]) -> None:
    done = run(dirs, "vg/lv")
    assert done.stdout.splitlines() == ["real lvs vg/lv", "parent lived 0"]


def test_armed_it_kills_its_parent_at_the_first_matching_call_only(dirs: tuple[Path, Path, Path]) -> None:
    armed = dirs[1] / "lvs"
    armed.write_text("vg/lv")
    assert run(dirs, "vg/other").stdout.splitlines() == ["real lvs vg/other", "parent lived 0"]
    killed = run(dirs, "--units", "b", "vg/lv")
    assert killed.returncode == -9 and killed.stdout == ""
    assert not armed.exists(), "it disarms itself"
    assert run(dirs, "vg/lv").stdout.splitlines() == ["real lvs vg/lv", "parent lived 0"]


def test_with_skip_it_lets_that_many_matching_calls_through_first(dirs: tuple[Path, Path, Path]) -> None:
    armed = dirs[1] / "lvs"
    (dirs[1] / "lvs.skip").write_text("1")
    armed.write_text("vg/lv")
    assert run(dirs, "vg/other").stdout.splitlines()[0] == "real lvs vg/other", "a call not matching counts not"
    assert run(dirs, "vg/lv").stdout.splitlines()[0] == "real lvs vg/lv"
    assert run(dirs, "vg/lv").returncode == -9
    assert not armed.exists() and not (dirs[1] / "lvs.skip").exists()
