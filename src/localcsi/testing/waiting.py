"""Polling for a condition in tests that drive real processes: the one wait loop they share."""

from __future__ import annotations

import time
from collections.abc import Callable
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
