"""A work queue for reconcilers: each key queued once, handled by one worker at a time, with delays.

A key added while a worker handles it is queued again when that worker is done, so a change that
arrives mid-reconcile is never lost and never handled twice at once.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._changed = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # queued keys and when they are due
        self._active: set[str] = set()
        self._again: dict[str, float] = {}  # added while active: queued when done
        self._order = itertools.count()
        self._closed = False

    def _push(self, key: str, due: float) -> None:
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._changed.notify()

    def add(self, key: str, delay: float = 0.0) -> None:
        with self._changed:
            if self._closed:
                return
            due = self.clock() + delay
            if key in self._active:
                self._again[key] = min(self._again.get(key, due), due)
            else:
                self._push(key, due)

    def get(self) -> str | None:
        """The next due key, marked active; None once the queue is closed."""
        with self._changed:
            while not self._closed:
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded by an earlier due time
                if not self._heap:
                    self._changed.wait()
                    continue
                due, _, key = self._heap[0]
                wait = due - self.clock()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                self._active.add(key)
                return key
            return None

    def done(self, key: str) -> None:
        with self._changed:
            self._active.discard(key)
            due = self._again.pop(key, None)
            if due is not None and not self._closed:
                self._push(key, due)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __len__(self) -> int:
        with self._changed:
            return len(self._due)


class Backoff:
    """Delays per key: ``first`` after one failure, doubling up to ``maximum``; reset on success."""

    def __init__(self, first: float = 1.0, maximum: float = 300.0) -> None:
        self.first = first
        self.maximum = maximum
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def failed(self, key: str) -> float:
        with self._lock:
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
        return float(min(self.maximum, self.first * 2 ** min(count - 1, 30)))

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
