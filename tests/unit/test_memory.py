"""trim_heap finds glibc's malloc_trim and runs it; disable_huge_pages opts a process out of THP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from localcsi.memory import trim_heap

pytestmark = pytest.mark.unit


def test_the_heap_is_trimmed_where_glibc_is() -> None:
    assert trim_heap() is True, "glibc's malloc_trim is found on this platform"
    assert trim_heap() is True, "and found again from the cache"


def test_a_process_opted_out_of_huge_pages_shows_it_in_proc() -> None:
    """In a child process, so that this one keeps its setting."""
    script = (
        "from localcsi.memory import disable_huge_pages\n"
        "assert disable_huge_pages()\n"
        "print([line for line in open('/proc/self/status') if line.startswith('THP_enabled')])"
    )
    shown = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert "THP_enabled:\\t0" in shown, shown
