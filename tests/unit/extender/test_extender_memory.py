"""The extender trims the heap only after a large request."""

from __future__ import annotations

from localcsi.extender.memory import TRIM_AFTER_BODY_BYTES, release_after


def test_only_a_large_body_trims_the_heap() -> None:
    assert release_after(0) is False
    assert release_after(TRIM_AFTER_BODY_BYTES - 1) is False
    assert release_after(TRIM_AFTER_BODY_BYTES) is True, "glibc's malloc_trim is found on this platform"
