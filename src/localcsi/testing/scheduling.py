"""Which tests xdist hands to one worker together, and in what order: the longest groups first, by what
their tests took in earlier runs on this machine.

A group is what a worker runs at a stretch: the whole e2e tier (one real node), the whole cluster tier
(one control plane), each csi-sanity run (its own VM, so the two runs can go to both workers) and
every other test module (its VM is a module fixture). xdist hands a worker its next group when the
current one nears its end. xdist's own order, by test count, left the fewest-test modules for last,
and those were among the longest: csi-sanity's two runs (440 s), the CSI fuzz run (130 s) and the
300-LV discovery (116 s), so one worker ran alone for the last minutes of the node tier. Longest
first, the last groups are short and both workers finish close together.

The record holds each test's seconds (setup, call and teardown), so a run of a few tests updates only
those; a group's expected time is the sum over its recorded tests. A group with none recorded goes
first (it may be long), and on a machine with no record the order is the collection's.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from localcsi.testing.image import cache_root

E2E_GROUP = "e2e"
CLUSTER_GROUP = "cluster"
RECORD_NAME = "test-durations.json"

Item = TypeVar("Item")


def group_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/e2e/"):
        return E2E_GROUP
    if path.startswith("tests/cluster/"):
        return CLUSTER_GROUP
    return nodeid if path.startswith("sanity/") else path


def record_path() -> Path:
    return cache_root() / RECORD_NAME


def load_record(path: Path) -> dict[str, float]:
    """Seconds by test id; empty when there is no record or it cannot be read (the order then falls back)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(key): float(value) for key, value in loaded.items() if isinstance(value, int | float)}


def save_record(path: Path, measured: Mapping[str, float]) -> None:
    """Merge `measured` into the record, replacing the tests it names (written whole, then renamed)."""
    merged = {**load_record(path), **{nodeid: round(seconds, 2) for nodeid, seconds in measured.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(merged, indent=0, sort_keys=True))
    partial.replace(path)


def expected_seconds(nodeids: Iterable[str], record: Mapping[str, float]) -> dict[str, float]:
    """Each group's expected seconds: the sum over its recorded tests, infinite when none is recorded."""
    known: dict[str, float] = {}
    groups: set[str] = set()
    for nodeid in nodeids:
        group = group_of(nodeid)
        groups.add(group)
        if nodeid in record:
            known[group] = known.get(group, 0.0) + record[nodeid]
    return {group: known.get(group, math.inf) for group in groups}


def longest_first(items: Sequence[Item], nodeid: Callable[[Item], str], record: Mapping[str, float]) -> list[Item]:
    """`items` with their groups in decreasing expected time. Each group's tests keep their order and stay
    together; groups that expect the same time (none recorded, say) keep theirs."""
    ids = [nodeid(item) for item in items]
    groups = [group_of(one) for one in ids]
    expected = expected_seconds(ids, record)
    first_seen = {group: index for index, group in reversed(list(enumerate(groups)))}
    by_position = sorted(range(len(items)), key=lambda i: (-expected[groups[i]], first_seen[groups[i]], i))
    return [items[i] for i in by_position]
