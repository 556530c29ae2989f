"""glibc's allocator, set for processes that run for months and now and then hold a large buffer.

glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with a mapping of
its own and unmaps it when it is freed. But every such free raises the threshold to the freed size
(up to 32 MiB), so from then on large buffers (an 8 MiB request body, 20,000 node names, a report of
1000 LVs) come from the arenas, where what is freed stays resident between smaller live objects: RSS
climbs to where the largest buffers took it while Python's own blocks stay flat. Setting the
threshold with ``mallopt`` (which also stops the adjustment) keeps large buffers in their own
mappings. The extender's fuzz test, 3000 examples alternating in one sitting: RSS after the run 53 MiB
pinned against 102 MiB not, and after two replays of the run 59 against 196 MiB (docs/testing.md).

``malloc_trim(0)`` hands back the free pages of every arena; it costs about a millisecond, so the
extender calls it only after a request whose body was large. (``MALLOC_ARENA_MAX=2`` was measured not
to help.) Other C libraries (musl) have neither call, and these functions then do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value
TRIM_AFTER_BODY_BYTES = 1 << 20


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    function = getattr(ctypes.CDLL(library), name, None)
    if function is None:
        return None
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations of ``threshold`` bytes or more from their own mappings, for the process's
    life; whether the C library took the setting."""
    mallopt = _glibc("mallopt")
    return mallopt is not None and mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(threshold)) == 1


def release_after(body_bytes: int) -> bool:
    """Trim the heap if a request of ``body_bytes`` was large; whether it was trimmed."""
    trim = _glibc("malloc_trim") if body_bytes >= TRIM_AFTER_BODY_BYTES else None
    if trim is None:
        return False
    trim(ctypes.c_size_t(0))
    return True
