"""One operation at a time per volume or snapshot, with sources shared.

A volume being created, deleted or expanded is held exclusively: a second caller gets ABORTED and
retries. A source (a snapshot being restored, a volume being cloned or snapshotted) is held shared:
many restores of one snapshot may run together, but deleting it meanwhile is ABORTED.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from localcsi.core.errors import Aborted


class VolumeLocks:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._exclusive: set[str] = set()
        self._shared: dict[str, int] = {}

    @contextmanager
    def hold(self, exclusive: Iterable[str] = (), shared: Iterable[str] = ()) -> Iterator[None]:
        """Hold every key or none: ABORTED if any is taken in a conflicting way."""
        mine = set(exclusive)
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

    def busy(self, key: str) -> bool:
        with self._mutex:
            return key in self._exclusive or key in self._shared
