"""Hand memory that a large request freed back to the system.

Each connection is served on its own thread, and glibc gives threads their own malloc arenas. What a
large request freed (an 8 MiB body, 20,000 node names) stays in its arena, so the extender's RSS grew
with the large requests it had seen while Python's allocated blocks stayed flat: the fuzz test's 300
derandomized examples ended 60 to 100 MiB above their warm-up's peak in most runs. `malloc_trim(0)`
(``localcsi.memory.trim_heap``) returns the free pages of every arena; it costs about a millisecond,
so it runs only after a request whose body was large (MALLOC_ARENA_MAX=2 was measured not to help:
docs/testing.md).
"""

from __future__ import annotations

from localcsi.memory import trim_heap

TRIM_AFTER_BODY_BYTES = 1 << 20


def release_after(body_bytes: int) -> bool:
    """Trim the heap if a request of `body_bytes` was large; whether it was trimmed."""
    return body_bytes >= TRIM_AFTER_BODY_BYTES and trim_heap()
