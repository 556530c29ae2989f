"""Where bench_scheduler.py's CPU goes during a round: how many of the machine's cores were busy, and
the CPU per decided pod of the machine and of each process watched (kube-scheduler, the apiserver,
etcd, the extender), from /proc, sampled on a thread between the round's first decision and its last.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

CORES = os.cpu_count() or 1  # /proc/stat's first line sums every core of the machine
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
CONTROL_PLANE = ("kube-scheduler", "kube-apiserver", "etcd")  # their /proc/PID/comm


class Sample(NamedTuple):
    """One look at the machine: when, its busy and all ticks (every core), and each watched process's."""

    at: float
    busy: int
    total: int
    processes: dict[str, int]


def busy_cores(samples: Sequence[Sample], start: float, end: float) -> float:
    """How many cores were busy on average between ``start`` and ``end``: the first and the last sample
    inside the window. NaN when fewer than two samples fall inside it."""
    first, last = _window(samples, start, end)
    if first is None or last is None or last.total <= first.total:
        return float("nan")
    return (last.busy - first.busy) / (last.total - first.total) * CORES


def cpu_per_pod(samples: Sequence[Sample], start: float, end: float, pods: int) -> dict[str, float]:
    """Milliseconds of CPU per decided pod between ``start`` and ``end``: the machine's (``machine``) and
    each watched process's that lived through the window; empty when fewer than two samples fall inside."""
    first, last = _window(samples, start, end)
    if first is None or last is None or pods <= 0:
        return {}
    per_pod = 1000 / TICKS_PER_SECOND / pods
    spent = {"machine": (last.busy - first.busy) * per_pod}
    for name, ticks in last.processes.items():
        if name in first.processes:
            spent[name] = (ticks - first.processes[name]) * per_pod
    return spent


def _window(samples: Sequence[Sample], start: float, end: float) -> tuple[Sample | None, Sample | None]:
    inside = [sample for sample in samples if start <= sample.at <= end]
    return (inside[0], inside[-1]) if len(inside) >= 2 else (None, None)


def cpu_ticks(stat: str) -> tuple[int, int]:
    """(busy, all) ticks from /proc/stat's text: its first line sums every core. Of its columns, user nice
    system idle iowait irq softirq steal are counted (guest time is already in user and nice); idle and
    iowait are not busy."""
    fields = [int(value) for value in stat.split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def process_ticks(pid: int) -> int | None:
    """User and system ticks of a process so far (/proc/PID/stat), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def pids_by_command(commands: Iterable[str]) -> dict[str, int]:
    """The running process of each of ``commands`` (its /proc/PID/comm), the newest where several run."""
    wanted, found = set(commands), {}
    for entry in sorted(os.scandir("/proc"), key=lambda entry: int(entry.name) if entry.name.isdigit() else 0):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name in wanted:
            found[name] = int(entry.name)
    return found


class CpuSampler:
    """The machine's ticks and each of ``processes``' (a name for each pid) every ``interval`` seconds on a
    thread, until ``stop``."""

    def __init__(self, processes: Mapping[str, int] | None = None, interval: float = 0.05) -> None:
        self.samples: list[Sample] = []
        self._processes = dict(processes or {})
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with open("/proc/stat") as stat:
                busy, total = cpu_ticks(stat.read())
            ticks = {name: process_ticks(pid) for name, pid in self._processes.items()}
            self.samples.append(
                Sample(time.monotonic(), busy, total, {n: t for n, t in ticks.items() if t is not None})
            )
            if self._stop.wait(self._interval):
                return

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return self.samples
