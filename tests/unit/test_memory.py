"""The memory settings the components run with (localcsi.memory): the pinned mmap threshold, heap
trims, and no transparent huge pages for the plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest

from localcsi import cli, memory
from localcsi.memory import TRIM_AFTER_BODY_BYTES, release_after, trim_heap

pytestmark = pytest.mark.unit

# In a fresh interpreter: free one 8 MiB buffer (which raises glibc's threshold unless it is pinned),
# then hold twenty 2 MiB buffers, each followed by a small object that outlives it, and free them.
FRAGMENT = """
import sys
from localcsi.memory import pin_mmap_threshold
def rss_kib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
pinned = sys.argv[1] == "pin" and pin_mmap_threshold()
before = rss_kib()
large = b"x" * (8 << 20)
del large
buffers, survivors = [], []
for _ in range(20):
    buffers.append(b"x" * (2 << 20))
    survivors.append(bytes(1000))
del buffers
print(pinned, rss_kib() - before)
"""


def freed_but_resident_kib(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", FRAGMENT, mode], capture_output=True, text=True, check=True).stdout
    pinned, kib = out.split()
    return pinned == "True", int(kib)


def test_a_pinned_threshold_hands_large_freed_buffers_back_and_the_default_does_not() -> None:
    pinned, kept_pinned = freed_but_resident_kib("pin")
    assert pinned, "glibc's mallopt is found on this platform"
    unpinned, kept_default = freed_but_resident_kib("default")
    assert not unpinned
    assert kept_pinned < 4 << 10, f"{kept_pinned} KiB of 40 MiB freed stayed resident with the threshold pinned"
    assert kept_default > 30 << 10, f"glibc's default kept only {kept_default} KiB: this test shows nothing"


def test_only_a_large_body_trims_the_heap() -> None:
    assert release_after(0) is False
    assert release_after(TRIM_AFTER_BODY_BYTES - 1) is False
    assert release_after(TRIM_AFTER_BODY_BYTES) is True, "glibc's malloc_trim is found on this platform"


def test_every_component_pins_the_threshold_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned: list[int] = []

    def pin(threshold: int = memory.MMAP_THRESHOLD_BYTES) -> bool:
        pinned.append(threshold)
        return True

    monkeypatch.setattr(memory, "pin_mmap_threshold", pin)
    monkeypatch.setattr(cli, "resolve_runner", lambda command: lambda args: 0)
    assert cli.main(["agent", "--node-name", "n1"]) == 0
    assert pinned == [memory.MMAP_THRESHOLD_BYTES]


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
