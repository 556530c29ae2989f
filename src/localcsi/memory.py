"""glibc's allocator and the kernel's huge pages, set for processes that run for months.

**Large buffers.** glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at
start) with a mapping of its own and unmaps it when it is freed. But every such free raises the
threshold to the freed size (up to 32 MiB), so from then on large buffers (an 8 MiB request body,
20,000 node names, a report of 1000 LVs) come from the arenas, where what is freed stays resident
between smaller live objects: RSS climbs to where the largest buffers took it while Python's own
blocks stay flat. ``pin_mmap_threshold`` sets the threshold with ``mallopt``, which also stops the
adjustment; every component calls it at start (``localcsi.cli.main``). The extender's fuzz test,
3000 examples, in one sitting: RSS after the run 53 MiB pinned against 102 MiB not, and after two
replays of the run 59 against 196 MiB (docs/testing.md).

**Arenas.** glibc gives threads their own arenas, and what a thread frees stays in its arena's free
lists. ``malloc_trim(0)`` (``trim_heap``) returns the free pages of every arena; it costs a fraction of
a millisecond on a small heap, so it runs after known large transient work only: the extender after a
large request body (``release_after``), the plugin after each lvm2 report it parses.
(``MALLOC_ARENA_MAX=2`` was measured not to help.)

**Huge pages.** Where the kernel gives transparent huge pages to every anonymous mapping
(``enabled=always``, the default of Debian's and RHEL's kernels), a thread stack or arena that touched
100 KiB can hold a 2 MiB page: the plugin's RSS moved by 2 MiB steps with which of its threads happened
to get one. ``disable_huge_pages`` opts the process out (``PR_SET_THP_DISABLE``, inherited by the
commands it runs); its memory is a few MiB of small objects, where huge pages buy nothing.

Other C libraries (musl) have none of these calls, and these functions then do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value
TRIM_AFTER_BODY_BYTES = 1 << 20
PR_SET_THP_DISABLE = 41


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name, use_errno=True)


def _function(name: str) -> Callable[..., Any] | None:  # glibc only, not musl
    libc = _libc()
    function: Callable[..., Any] | None = None if libc is None else getattr(libc, name, None)
    return function


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations of ``threshold`` bytes or more from their own mappings, for the process's
    life; whether the C library took the setting."""
    mallopt = _function("mallopt")
    return mallopt is not None and int(mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(threshold))) == 1


def trim_heap() -> bool:
    """Return the free pages of every malloc arena to the system; False where there is no malloc_trim."""
    trim = _function("malloc_trim")
    if trim is None:
        return False
    trim(ctypes.c_size_t(0))
    return True


def release_after(body_bytes: int) -> bool:
    """Trim the heap if a request of ``body_bytes`` was large; whether it was trimmed."""
    return body_bytes >= TRIM_AFTER_BODY_BYTES and trim_heap()


def disable_huge_pages() -> bool:
    """No transparent huge pages for this process from now on (Linux 3.15+); whether that took."""
    prctl = _function("prctl")
    if prctl is None:
        return False
    args = (ctypes.c_int(PR_SET_THP_DISABLE), *(ctypes.c_ulong(value) for value in (1, 0, 0, 0)))
    return int(prctl(*args)) == 0
