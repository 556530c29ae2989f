"""Status writes only on change, pruned fields included; Events once per problem while it lasts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localcsi.agent.status import REASON_REFUSED, StatusPublisher
from localcsi.core.nodestorage_init import Refusal

pytestmark = pytest.mark.unit


class PruningStatusWriter:
    """Answers a status patch like an apiserver whose schema lacks ``dropped`` keys."""

    def __init__(self, dropped: tuple[str, ...] = ()) -> None:
        self.dropped = dropped
        self.stored: dict[str, Any] = {}
        self.writes = 0

    def patch_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        self.stored = {k: copy.deepcopy(v) for k, v in status.items() if k not in self.dropped}
        return {"metadata": {"name": name}, "status": self.stored}

    def resource(self) -> dict[str, Any]:
        return {"metadata": {"name": "node-1"}, "status": copy.deepcopy(self.stored)}


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def record(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        self.seen.append((event_type, reason, message))


def status(allocatable: int, when: str, extra: int = 0) -> dict[str, Any]:
    return {
        "nodeStorageInfo": {"volumeGroups": [{"name": "pool0", "allocatable": allocatable, "extentSize": extra}]},
        "filteredStorageInfo": {"updateStatusInfo": {"updateStatus": "accepted", "lastUpdateTime": when}},
        "extra": extra,
    }


def test_writes_only_when_something_but_the_update_time_changed() -> None:
    writer = PruningStatusWriter()
    publisher = StatusPublisher(writer)
    assert publisher.publish(writer.resource(), status(5, "t0"))
    assert not publisher.publish(writer.resource(), status(5, "t1"))
    assert publisher.publish(writer.resource(), status(4, "t2"))
    assert writer.writes == 2 and writer.stored["filteredStorageInfo"]["updateStatusInfo"]["lastUpdateTime"] == "t2"


def test_a_field_the_apiserver_drops_does_not_cause_a_write_every_cycle() -> None:
    writer = PruningStatusWriter(dropped=("extra",))
    publisher = StatusPublisher(writer)
    assert publisher.publish(writer.resource(), status(5, "t0", extra=1))
    assert not publisher.publish(writer.resource(), status(5, "t1", extra=1))
    assert publisher.publish(writer.resource(), status(5, "t2", extra=2))  # what we would send changed


def test_a_status_changed_by_someone_else_is_written_again() -> None:
    writer = PruningStatusWriter()
    publisher = StatusPublisher(writer)
    publisher.publish(writer.resource(), status(5, "t0"))
    writer.stored["nodeStorageInfo"] = {"volumeGroups": []}
    assert publisher.publish(writer.resource(), status(5, "t1"))


def test_a_fresh_agent_does_not_rewrite_an_up_to_date_status() -> None:
    writer = PruningStatusWriter()
    StatusPublisher(writer).publish(writer.resource(), status(5, "t0"))
    assert not StatusPublisher(writer).publish(writer.resource(), status(5, "t1"))


def test_refusal_events_once_while_they_last() -> None:
    events = Events()
    publisher = StatusPublisher(PruningStatusWriter(), events)
    nls = {"metadata": {"name": "node-1"}}
    refusal = Refusal("pool0", "/dev/vdb", "blkid finds ext4 (filesystem) on it")
    for _ in range(3):
        publisher.report_refusals(nls, [refusal])
    assert [(t, r) for t, r, _ in events.seen] == [("Warning", REASON_REFUSED)]
    assert "VG pool0, device /dev/vdb: blkid finds ext4" in events.seen[0][2]
    publisher.report_refusals(nls, [])
    publisher.report_refusals(nls, [refusal])
    assert len(events.seen) == 2
