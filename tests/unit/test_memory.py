"""trim_heap finds glibc's malloc_trim and runs it."""

from __future__ import annotations

import pytest

from localcsi.memory import trim_heap

pytestmark = pytest.mark.unit


def test_the_heap_is_trimmed_where_glibc_is() -> None:
    assert trim_heap() is True, "glibc's malloc_trim is found on this platform"
    assert trim_heap() is True, "and found again from the cache"
