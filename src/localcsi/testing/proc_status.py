"""A process's resident memory as /proc shows it, for the benchmarks (inside the node VM too)."""

from __future__ import annotations

RSS_FIELDS = ("VmRSS", "VmHWM")


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (its peak) of ``pid``, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {key: int(fields[key].split()[0]) for key in RSS_FIELDS}
