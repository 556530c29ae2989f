"""Status patches carry only what changed; the Healthy condition keeps its transition time."""

from __future__ import annotations

from typing import Any

import pytest

from localcsi.agent.lv_status import health_condition, status_patch
from localcsi.core.model import LogicalVolume
from localcsi.core.sizes import GiB
from localcsi.resources.logicalvolume import Phase

pytestmark = pytest.mark.unit


def resource(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "csi-1", "generation": 3}, "spec": {"nodeName": "node-1"}, "status": status}


def test_only_changed_fields_are_written_and_none_removes_one() -> None:
    obj = resource(phase="Creating", code="Internal", message="retrying")
    patch = status_patch(obj, phase=Phase.READY, code=None, message="retrying", currentSize=GiB)
    assert patch == {"phase": "Ready", "code": None, "currentSize": GiB}
    assert type(patch["phase"]) is str
    assert status_patch(obj, phase=Phase.CREATING, volumeId=None) == {}


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    healthy = LogicalVolume("vg", "csi-1", GiB, "-wi-a-----")
    first = health_condition(resource(), healthy, None)
    assert (first["status"], first["reason"], first["observedGeneration"]) == ("True", "Healthy", 3)
    obj = resource(conditions=[{**first, "lastTransitionTime": "2025-01-01T00:00:00Z"}])
    assert status_patch(obj, conditions=[health_condition(obj, healthy, None)]) == {}

    partial = LogicalVolume("vg", "csi-1", GiB, "-wi-a---p-")
    [changed] = status_patch(obj, conditions=[health_condition(obj, partial, None)])["conditions"]
    assert (changed["status"], changed["reason"]) == ("False", "Abnormal")
    assert changed["lastTransitionTime"] != "2025-01-01T00:00:00Z"
    assert "missing" in changed["message"]


def test_overflowed_and_missing_lvs_have_their_own_reasons() -> None:
    overflowed = LogicalVolume("vg", "snap-1", GiB, "swi-I-s---")
    assert health_condition(resource(), overflowed, None)["reason"] == "SnapshotInvalid"
    gone = health_condition(resource(), None, None, missing=True)
    assert (gone["status"], gone["reason"]) == ("False", "Missing") and "node-1" in gone["message"]
