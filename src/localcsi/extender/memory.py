"""Hand memory that a large request freed back to the system.

Each connection is served on its own thread, and glibc gives threads their own malloc arenas. What a
large request freed (an 8 MiB body, 20,000 node names) stays in its arena, so the extender's RSS grew
with the large requests it had seen while Python's allocated blocks stayed flat: the fuzz test's 300
derandomized examples ended 60 to 100 MiB above their warm-up's peak in most runs. `malloc_trim(0)`
returns the free pages of every arena; it costs about a millisecond, so it runs only after a request
whose body was large (MALLOC_ARENA_MAX=2 was measured not to help: docs/testing.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

TRIM_AFTER_BODY_BYTES = 1 << 20


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only (not musl)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_after(body_bytes: int) -> bool:
    """Trim the heap if a request of `body_bytes` was large; whether it was trimmed."""
    trim = _malloc_trim() if body_bytes >= TRIM_AFTER_BODY_BYTES else None
    if trim is None:
        return False
    trim(0)
    return True
