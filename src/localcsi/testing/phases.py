"""One line per phase with its elapsed time: a cold image build takes minutes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Phases:
    def __init__(self, write: Callable[[str], None] = _stderr, prefix: str = "[node-vm]") -> None:
        self._write = write
        self._prefix = prefix
        self.timings: dict[str, float] = {}

    def note(self, message: str) -> None:
        self._write(f"{self._prefix} {message}")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self._write(f"{self._prefix} {name}: FAILED after {time.monotonic() - start:.1f}s")
            raise
        elapsed = time.monotonic() - start
        self.timings[name] = elapsed
        self._write(f"{self._prefix} {name}: {elapsed:.1f}s")
