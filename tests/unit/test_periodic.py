"""The background loop: runs at start when asked, survives failures, and stops promptly."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from localcsi.core.errors import Internal
from localcsi.periodic import Periodic

pytestmark = pytest.mark.unit


def test_it_runs_at_start_then_every_interval_and_stops_promptly() -> None:
    runs: list[float] = []
    third = threading.Event()

    def action() -> None:
        runs.append(time.monotonic())
        if len(runs) == 3:
            third.set()

    loop = Periodic("test-loop", 0.01, action, run_at_start=True)
    loop.start()
    assert third.wait(5), f"ran {len(runs)} times"
    started = time.monotonic()
    loop.stop()
    assert time.monotonic() - started < 1


def test_without_run_at_start_nothing_runs_before_the_first_interval() -> None:
    runs: list[int] = []
    loop = Periodic("test-loop", 3600, lambda: runs.append(1))
    loop.start()
    time.sleep(0.05)
    loop.stop()
    assert runs == []


def test_failures_are_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    outcomes: list[Exception | None] = [Internal("lvs failed"), RuntimeError("bug"), None]
    done = threading.Event()

    def action() -> None:
        outcome = outcomes.pop(0)
        if not outcomes:
            done.set()
        if outcome is not None:
            raise outcome

    loop = Periodic("test-loop", 0.01, action, run_at_start=True)
    with caplog.at_level(logging.WARNING, logger="localcsi.periodic"):
        loop.start()
        assert done.wait(5)
        loop.stop()
    messages = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert ("WARNING", "test-loop failed: lvs failed") in messages  # a known failure: its message
    assert ("ERROR", "test-loop failed") in messages  # anything else: with its traceback
    assert next(r for r in caplog.records if r.levelname == "ERROR").exc_info is not None
