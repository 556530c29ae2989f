"""One in-flight operation per key (a CSI name or id): the second caller is told to retry (ABORTED)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from localcsi.core.errors import Aborted


class OperationLocks:
    """A non-blocking, thread-safe registry of keys with an operation in progress."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[str] = set()

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """Hold every key for the duration, or none of them: raise Aborted if any is already held."""
        wanted = set(keys)
        with self._mutex:
            busy = sorted(wanted & self._held)
            if busy:
                raise Aborted(f"an operation for {busy[0]!r} is already in progress; retry later")
            self._held |= wanted
        try:
            yield
        finally:
            with self._mutex:
                self._held -= wanted

    def is_held(self, key: str) -> bool:
        with self._mutex:
            return key in self._held
