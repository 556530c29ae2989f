"""`python_env`: how another interpreter or checkout runs localcsi's extender with this environment's packages."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

import pytest

from localcsi.testing.extender import THIS_TREE, python_env

pytestmark = pytest.mark.unit


def fake_interpreter(tmp_path: Path, says: str) -> str:
    """An executable that answers the version probe with `says`, whatever its arguments."""
    path = tmp_path / "python3"
    path.write_text(f"#!/bin/sh\necho {says}\n")
    path.chmod(0o755)
    return str(path)


def search_path(env: dict[str, str] | None) -> list[str]:
    assert env is not None
    return env["PYTHONPATH"].split(os.pathsep)


def test_this_interpreter_and_tree_need_no_environment_of_their_own() -> None:
    assert python_env(sys.executable) is None


def test_another_checkout_comes_first_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert search_path(python_env(sys.executable, tmp_path)) == [str(tmp_path), "/elsewhere"]


def test_another_interpreter_of_the_same_version_gets_this_tree_and_these_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    python = fake_interpreter(tmp_path, f"{sys.implementation.name} {sys.version_info[0]} {sys.version_info[1]}")
    assert search_path(python_env(python)) == [str(THIS_TREE), *site.getsitepackages()]


def test_another_minor_version_is_refused_before_anything_runs(tmp_path: Path) -> None:
    python = fake_interpreter(tmp_path, f"{sys.implementation.name} {sys.version_info[0]} {sys.version_info[1] + 1}")
    with pytest.raises(ValueError, match="this environment's packages are for"):
        python_env(python)
