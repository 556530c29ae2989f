"""The shell entry points of the README's two commands: `bash hack/demo` and `bash .ci/run` both install
through hack/install-deps. Checked without installing anything: syntax, and install-deps' arguments."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INSTALL_DEPS = ROOT / "hack" / "install-deps"
SCRIPTS = [ROOT / "hack" / "demo", INSTALL_DEPS, ROOT / ".ci" / "run"]
BASH = shutil.which("bash") or "/bin/bash"


def bash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_script_parses(script: Path) -> None:
    result = bash("-n", str(script))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", [ROOT / "hack" / "demo", ROOT / ".ci" / "run"], ids=["demo", "ci"])
def test_both_entry_points_install_through_install_deps_with_their_own_label(script: Path) -> None:
    label = "demo" if script.name == "demo" else "ci"
    assert f'bash hack/install-deps --prefix {label} --since "$started"' in script.read_text()


def test_install_deps_help_lists_its_options() -> None:
    result = bash(str(INSTALL_DEPS), "--help")
    assert result.returncode == 0
    assert "--prefix LABEL" in result.stdout
    assert "--since EPOCH" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument: --bogus"),
        (["--since", "yesterday"], "--since wants seconds since the epoch"),
    ],
)
def test_install_deps_refuses_bad_arguments_before_installing_anything(args: list[str], message: str) -> None:
    result = bash(str(INSTALL_DEPS), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "apt-get" not in result.stdout


def test_install_deps_wants_a_value_after_prefix() -> None:
    result = bash(str(INSTALL_DEPS), "--prefix")
    assert result.returncode != 0
    assert "--prefix needs a label" in result.stderr


def test_ci_runs_every_tier_of_tox_envlist_once() -> None:
    """.ci/run names the tiers itself: none may be left out or run twice."""
    envlist = re.search(r"^envlist = (.+)$", (ROOT / "tox.ini").read_text(), re.MULTILINE)
    assert envlist is not None
    ci_run = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(?:nice -n \d+ )?python3 -m tox (?:run-parallel )?-e (\S+)", ci_run, re.MULTILINE)
    named = [tier for command in commands for tier in command.split(",")]
    assert sorted(named) == sorted(tier.strip() for tier in envlist.group(1).split(","))
    assert len(named) == len(set(named))
