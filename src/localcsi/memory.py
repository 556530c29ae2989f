"""Handing freed heap memory back to the system.

glibc gives threads their own malloc arenas, and what a thread frees stays in its arena's free lists:
a process's RSS grows with the large transient work its threads did while Python's live objects stay
flat (the extender's large requests, the plugin's lvm2 reports of 1000 LVs). ``malloc_trim(0)``
returns the free pages of every arena; it costs a fraction of a millisecond on a small heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


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


def trim_heap() -> bool:
    """Return the free pages of every malloc arena to the system; False where there is no malloc_trim."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
