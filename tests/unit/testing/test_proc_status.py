from __future__ import annotations

import os

import pytest

from localcsi.testing.proc_status import anonymous_kib, classify, parse_smaps, rss_kib, threads

pytestmark = pytest.mark.unit


def mapping(
    start: int, size_kib: int, perms: str, name: str = "", rss_kib: int = 0, *, inode: int = 0, huge: int = 0
) -> str:
    end = start + size_kib * 1024
    return (
        f"{start:012x}-{end:012x} {perms} 00000000 00:00 {inode}    {name}\n"
        f"Size:           {size_kib} kB\nKernelPageSize:        4 kB\nRss:            {rss_kib} kB\n"
        f"Pss:            {rss_kib} kB\nAnonHugePages:  {huge} kB\nVmFlags: rd wr mr mw me ac\n"
    )


SMAPS = "".join(
    [
        mapping(0x55_0000_0000, 132, "r-xp", "/usr/bin/python3.11", 100, inode=1234),
        mapping(0x55_1000_0000, 2048, "rw-p", "[heap]", 1500),
        # a thread's arena: 1 MiB used of its 64 MiB reservation
        mapping(0x7F_0000_0000, 1024, "rw-p", rss_kib=900),
        mapping(0x7F_0010_0000, 63 * 1024, "---p"),
        # a thread's stack behind its guard page
        mapping(0x7F_1000_0000, 4, "---p"),
        mapping(0x7F_1000_1000, 8192, "rw-p", rss_kib=40),
        # one that the kernel backed with a transparent huge page
        mapping(0x7F_1100_0000, 4, "---p"),
        mapping(0x7F_1100_1000, 8192, "rw-p", rss_kib=2100, huge=2048),
        # pymalloc arenas and large blocks
        mapping(0x7F_2000_0000, 3072, "rw-p", rss_kib=3000),
        mapping(0x7F_3000_0000, 512, "r--p", "/usr/lib/libc.so.6", 200, inode=99),
        mapping(0x7F_4000_0000, 132, "rw-p", "[stack]", 132),
    ]
)


def test_smaps_mappings_are_read_with_their_resident_size() -> None:
    mappings = parse_smaps(SMAPS)
    assert mappings[0] == ("r-xp", 132, "/usr/bin/python3.11", 100, 0)
    assert mappings[2] == ("rw-p", 1024, "", 900, 0)
    assert mappings[7] == ("rw-p", 8192, "", 2100, 2048)
    assert len(mappings) == 11


def test_anonymous_memory_is_split_by_the_shape_of_its_mapping() -> None:
    assert classify(parse_smaps(SMAPS)) == {
        "malloc_main": 1500,
        "malloc_threads": 900,
        "thread_stacks": 2140,
        "other": 3000,
        "huge_pages": 2048,
    }


def test_this_process_is_read_from_proc() -> None:
    own = rss_kib()
    assert 0 < own["VmRSS"] <= own["VmHWM"]
    assert rss_kib(os.getpid()).keys() == own.keys() >= {"RssAnon", "RssFile"}
    assert threads() >= 1
    assert sum(anonymous_kib().values()) > 0


def test_a_process_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        rss_kib(2**22 + 1)
