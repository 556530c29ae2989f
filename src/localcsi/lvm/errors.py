"""lvm2 failures as core errors, recognised by lvm2's own messages (the runner sets LC_ALL=C)."""

from __future__ import annotations

import re

from localcsi.core.errors import (
    AlreadyExists,
    CoreError,
    FailedPrecondition,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from localcsi.lvm.runner import CommandFailed

_RULES: tuple[tuple[re.Pattern[str], type[CoreError], str], ...] = (
    (
        re.compile(
            r"[Ii]nsufficient (free space|suitable allocatable extents)|free space in thin pool",
        ),
        ResourceExhausted,
        "not enough free space",
    ),
    (re.compile(r"already exists in volume group"), AlreadyExists, "the logical volume already exists"),
    (re.compile(r'Volume group "[^"]*" not found'), NotFound, "the volume group does not exist"),
    (
        # lvs/lvremove say the first, lvextend/lvchange the second.
        re.compile(r"Failed to find logical volume|Logical volume \S+ not found in volume group"),
        NotFound,
        "the logical volume does not exist",
    ),
    (
        re.compile(r"Number of stripes \(\d+\) must not exceed number of physical volumes"),
        ResourceExhausted,
        "not enough physical volumes for that many stripes",
    ),
    (
        re.compile(r"Pool \S+ not found in Volume group"),
        FailedPrecondition,
        "the thin pool does not exist; create it first (lvcreate --type thin-pool)",
    ),
    (
        re.compile(r"contains a filesystem in use|in use\.|is open|Can't remove open logical volume"),
        FailedPrecondition,
        "the logical volume is in use; unpublish it first",
    ),
    (
        re.compile(r"can be resized only while inactive"),
        FailedPrecondition,
        "lvm2 grows this volume only while it is not in use (it has thick snapshots)",
    ),
    (
        re.compile(r"not larger than existing size|must be larger than|cannot be reduced"),
        OutOfRange,
        "logical volumes only grow",
    ),
)


def translate(failure: CommandFailed) -> CoreError:
    """The core error for a failed lvm2 command: its code from the message, the command in the text."""
    for pattern, kind, summary in _RULES:
        if pattern.search(failure.stderr):
            return kind(f"{summary}: {failure.message}")
    return failure


def matches_existing_size(failure: CommandFailed) -> bool:
    """lvextend to the size an LV already has: an idempotent retry, not a failure."""
    return "matches existing size" in failure.stderr
