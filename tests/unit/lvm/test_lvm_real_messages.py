"""lvm2 2.03.16's own messages, as recorded in the node VM, mapped to CSI codes.

The node tier (tests/node/lvm) provokes each of these for real; this keeps the mapping honest
without a VM.
"""

from __future__ import annotations

import pytest

from localcsi.core.errors import (
    AlreadyExists,
    CoreError,
    FailedPrecondition,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from localcsi.lvm import commands
from localcsi.lvm.errors import matches_existing_size, translate
from localcsi.lvm.runner import CommandFailed

pytestmark = pytest.mark.unit

RECORDED = [
    ('  Logical Volume "csi-linear" already exists in volume group "localcsi-a"', AlreadyExists),
    ('  Volume group "localcsi-a" has insufficient free space (1850 extents): 23842 required.', ResourceExhausted),
    ("  Number of stripes (3) must not exceed number of physical volumes (2)", ResourceExhausted),
    ("  Insufficient suitable allocatable extents for logical volume csi-big: 4 more required", ResourceExhausted),
    ("  Insufficient free space: 23826 extents needed, but only 1850 available", ResourceExhausted),
    ("  Pool nopool not found in Volume group localcsi-a.", FailedPrecondition),
    ('  Failed to find logical volume "localcsi-a/csi-nothere"', NotFound),
    ("  Logical volume csi-nothere not found in volume group localcsi-a.", NotFound),
    ('  Volume group "novg" not found\n  Cannot process volume group novg', NotFound),
    ("  New size given (8 extents) not larger than existing size (16 extents)", OutOfRange),
    ("  Snapshot origin volumes can be resized only while inactive: try lvchange -an.", FailedPrecondition),
    ('  Logical volume localcsi-a/csi-x contains a filesystem in use.', FailedPrecondition),
]  # fmt: skip


@pytest.mark.parametrize(("stderr", "error"), RECORDED)
def test_recorded_lvm2_messages_map_to_csi_codes(stderr: str, error: type[CoreError]) -> None:
    failure = CommandFailed(["lvm"], 5, stderr + "\n")
    translated = translate(failure)
    assert type(translated) is error
    assert stderr.strip().splitlines()[0] in translated.message, "lvm2's own words stay in the message"


def test_extending_to_the_same_size_is_recognised() -> None:
    same = CommandFailed(["lvextend"], 5, "  New size (16 extents) matches existing size (16 extents).\n")
    assert matches_existing_size(same)
    assert not matches_existing_size(CommandFailed(["lvextend"], 5, "  Insufficient free space\n"))


def test_split_snapshot_argv_never_prompts() -> None:
    assert commands.split_snapshot_argv("localcsi-a", "snap-1") == [
        "lvconvert", "--yes", "--splitsnapshot", "localcsi-a/snap-1",
    ]  # fmt: skip
