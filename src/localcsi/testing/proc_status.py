"""A process's resident memory as /proc shows it, for the benchmarks (inside the node VM too).

``anonymous_kib`` splits the anonymous resident memory by what the mapping is, from its shape in
/proc/PID/smaps (glibc 2.3x on x86-64, which is what the node VM runs):
- ``malloc_main``: the main arena, ``[heap]``;
- ``malloc_threads``: the arenas glibc gives other threads, each a 64 MiB reservation whose used part
  is read-write and the rest inaccessible;
- ``thread_stacks``: 8 MiB read-write mappings behind a one-page guard;
- ``other``: the rest (CPython's 1 MiB pymalloc arenas, large malloc blocks, libraries' own mmaps);
and ``huge_pages``, how much of all that is transparent huge pages: where the kernel gives them to
any anonymous mapping (``enabled=always``), a thread stack that touched 100 KiB may hold 2 MiB.
"""

from __future__ import annotations

import re

RSS_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
ARENA_RESERVATION_KIB = 64 * 1024
STACK_KIB = 8 * 1024
GUARD_KIB = 4
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$")


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS (resident now), VmHWM (its peak), RssAnon and RssFile of ``pid``, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {key: int(fields[key].split()[0]) for key in RSS_FIELDS if key in fields}


def threads(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/status has no Threads line")


Mapping = tuple[str, int, str, int, int]


def parse_smaps(text: str) -> list[Mapping]:
    """(permissions, size KiB, name, resident KiB, of which huge pages KiB) of each mapping; name is ""
    for anonymous memory."""
    mappings: list[Mapping] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header is not None:
            start, end, perms, inode, name = header.groups()
            label = name.strip() if inode == "0" else name.strip() or "file"
            mappings.append((perms, (int(end, 16) - int(start, 16)) // 1024, label, 0, 0))
        elif line.startswith("Rss:") and mappings:
            perms, size, label, _, huge = mappings[-1]
            mappings[-1] = (perms, size, label, int(line.split()[1]), huge)
        elif line.startswith("AnonHugePages:") and mappings:
            perms, size, label, rss, _ = mappings[-1]
            mappings[-1] = (perms, size, label, rss, int(line.split()[1]))
    return mappings


def classify(mappings: list[Mapping]) -> dict[str, int]:
    """Anonymous resident KiB by kind (see the module's docstring)."""
    kinds = {"malloc_main": 0, "malloc_threads": 0, "thread_stacks": 0, "other": 0, "huge_pages": 0}
    for index, (perms, size, name, rss, huge) in enumerate(mappings):
        kinds["huge_pages"] += huge
        if name == "[heap]":
            kinds["malloc_main"] += rss
            continue
        if name or perms[:2] != "rw":
            continue
        after = mappings[index + 1] if index + 1 < len(mappings) else None
        before = mappings[index - 1] if index > 0 else None
        reserved = after is not None and after[0].startswith("---") and not after[2]
        if reserved and after is not None and size + after[1] == ARENA_RESERVATION_KIB:
            kinds["malloc_threads"] += rss
        elif size == STACK_KIB and before is not None and before[0].startswith("---") and before[1] == GUARD_KIB:
            kinds["thread_stacks"] += rss
        else:
            kinds["other"] += rss
    return kinds


def anonymous_kib(pid: int | str = "self") -> dict[str, int]:
    with open(f"/proc/{pid}/smaps") as smaps:
        return classify(parse_smaps(smaps.read()))
