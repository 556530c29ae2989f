"""Handing freed heap memory back to the system.

glibc gives threads their own malloc arenas, and what a thread frees stays in its arena's free lists:
a process's RSS grows with the large transient work its threads did while Python's live objects stay
flat (the extender's large requests, the plugin's lvm2 reports of 1000 LVs). ``malloc_trim(0)``
returns the free pages of every arena; it costs a fraction of a millisecond on a small heap.

Where the kernel gives transparent huge pages to every anonymous mapping (``enabled=always``, the
default of Debian's and RHEL's kernels), a thread stack or arena that touched 100 KiB can hold a 2 MiB
page: the plugin's RSS moved by 2 MiB steps with which of its threads happened to get one.
``disable_huge_pages`` opts the process out (``PR_SET_THP_DISABLE``, inherited by the commands it
runs); its memory is a few MiB of small objects, where huge pages buy nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

PR_SET_THP_DISABLE = 41


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name, use_errno=True)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    trim = None if libc is None else getattr(libc, "malloc_trim", None)  # glibc only (not musl)
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


def disable_huge_pages() -> bool:
    """No transparent huge pages for this process from now on (Linux 3.15+); whether that took."""
    libc = _libc()
    prctl = None if libc is None else getattr(libc, "prctl", None)
    if prctl is None:
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return int(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) == 0
