"""The reconciler's work queue: one entry per key, one worker per key, delays, and close."""

from __future__ import annotations

import threading

import pytest

from localcsi.agent.lv_queue import Backoff, WorkQueue

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_queued_once_and_in_due_order() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("b", delay=5)
    queue.add("a")
    queue.add("a")
    queue.add("b", delay=1)  # an earlier due time wins
    assert len(queue) == 2
    assert queue.get() == "a"
    clock.now = 1
    assert queue.get() == "b"
    assert len(queue) == 0


def test_a_key_added_while_it_is_handled_comes_back_after_done() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get() == "a"
    queue.add("a")
    assert len(queue) == 0, "not handed to a second worker meanwhile"
    queue.done("a")
    assert queue.get() == "a"


def test_get_waits_for_a_delay_and_close_releases_waiting_workers() -> None:
    queue = WorkQueue()
    queue.add("later", delay=0.05)
    assert queue.get() == "later"
    results: list[str | None] = []
    worker = threading.Thread(target=lambda: results.append(queue.get()))
    worker.start()
    queue.close()
    worker.join(timeout=5)
    assert results == [None]
    queue.add("ignored")
    assert len(queue) == 0


def test_backoff_doubles_up_to_the_maximum_and_resets_on_success() -> None:
    backoff = Backoff(first=1, maximum=5)
    assert [backoff.failed("a") for _ in range(5)] == [1, 2, 4, 5, 5]
    assert backoff.failed("b") == 1
    backoff.succeeded("a")
    assert backoff.failed("a") == 1
