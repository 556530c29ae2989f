"""One operation at a time per key (a CSI name, a volume or snapshot id), with sources shared.

A key held exclusively (a volume being created, deleted, expanded or published) turns a second
caller away with ABORTED, to retry later. A key held shared (a snapshot being restored, a volume
being cloned or snapshotted) may be held shared by many at once, but not exclusively meanwhile:
deleting a snapshot while it is being restored is ABORTED.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from localcsi.core.errors import Aborted


class OperationLocks:
    """A non-blocking, thread-safe registry of keys with an operation in progress."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._exclusive: set[str] = set()
        self._shared: dict[str, int] = {}

    @contextmanager
    def hold(self, *keys: str, exclusive: Iterable[str] = (), shared: Iterable[str] = ()) -> Iterator[None]:
        """Hold ``keys`` and ``exclusive`` exclusively and ``shared`` shared for the duration, every key
        or none: raise Aborted if any is already taken in a conflicting way."""
        mine = {*keys, *exclusive}
        reading = set(shared) - mine
        with self._mutex:
            busy = sorted((mine & (self._exclusive | set(self._shared))) | (reading & self._exclusive))
            if busy:
                raise Aborted(f"an operation on {busy[0]!r} is already in progress; retry later")
            self._exclusive |= mine
            for key in reading:
                self._shared[key] = self._shared.get(key, 0) + 1
        try:
            yield
        finally:
            with self._mutex:
                self._exclusive -= mine
                for key in reading:
                    self._shared[key] -= 1
                    if not self._shared[key]:
                        del self._shared[key]

    def is_held(self, key: str) -> bool:
        with self._mutex:
            return key in self._exclusive or key in self._shared
