"""Duration and failures of every command ``localcsi.lvm.runner.SubprocessRunner`` runs.

The one label is the program's name (``lvcreate``, ``lvm``, ``mkfs.ext4``, ``resize2fs``, ``blkid``),
past the ``nsenter`` prefix: the program names are fixed by the code, so the label is bounded. Never
the argv, which carries volume names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

# lvm2 calls take 0.1 s to a few seconds (a thin pool ~1.5 s under TCG); a wipe of a large LV, minutes.
BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Outcome(StrEnum):
    OK = "ok"
    EXIT = "exit"  # a non-zero exit status
    TIMEOUT = "timeout"  # killed after its timeout
    EXEC = "exec"  # could not be started at all


def program(argv: Sequence[str]) -> str:
    """The program's base name, past an ``nsenter ... --`` prefix."""
    if argv and os.path.basename(argv[0]) == "nsenter" and "--" in argv:
        rest = argv[list(argv).index("--") + 1 :]
        argv = rest or argv
    return os.path.basename(argv[0]) if argv else ""


class CommandMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.duration = Histogram(
            "localcsi_command_duration_seconds",
            "Time of each command localcsi runs (lvm2, mkfs, resize, blkid...), by program, failed or not.",
            ["command"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "localcsi_command_failures",
            "Commands that failed, by program and how: exit (non-zero status), timeout, exec (not started).",
            ["command", "reason"],
            registry=registry,
        )

    def observe(self, argv: Sequence[str], seconds: float, outcome: Outcome) -> None:
        name = program(argv)
        self.duration.labels(name).observe(seconds)
        if outcome is not Outcome.OK:
            self.failures.labels(name, outcome.value).inc()


COMMANDS: Final = CommandMetrics()
