"""Polling for a condition in tests that drive real processes: the one wait loop they share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 120,
    interval: float = 0.2,
    context: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something truthy and return that; after `timeout` seconds fail
    with `what` and, when given, `context()` (a log tail, for instance)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def start_until(
    what: str,
    argv: Sequence[str],
    log_path: Path,
    healthy: Callable[[subprocess.Popen[bytes]], bool],
    *,
    timeout: float,
    context: Callable[[], str] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` (in `env`, or this process's environment) with its output appended to `log_path` and
    wait until `healthy(process)`; a start that fails or times out kills the process rather than leave
    it behind."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(what, lambda: healthy(process), timeout, context=context)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return process
