"""LogicalVolume status as the agent writes it: merge patches of what changed, and the Healthy condition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from localcsi.core.health import volume_condition
from localcsi.core.model import LogicalVolume
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import HEALTHY_CONDITION, SNAPSHOT_INVALID_REASON
from localcsi.resources.meta import Condition

_TIME_KEY = "lastTransitionTime"


def now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_conditions(current: Sequence[Mapping[str, Any]], wanted: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
    """``wanted`` replacing conditions of the same type; a condition whose status did not change keeps
    its lastTransitionTime."""
    by_type = {c.get("type"): c for c in current}
    merged = {c.get("type"): c for c in current}
    for condition in wanted:
        old = by_type.get(condition["type"])
        kept = old is not None and old.get("status") == condition["status"]
        since = old.get(_TIME_KEY, condition[_TIME_KEY]) if old is not None and kept else condition[_TIME_KEY]
        merged[condition["type"]] = {**condition, _TIME_KEY: since}
    return list(merged.values())


def status_patch(obj: llv.Wire, **changes: Any) -> dict[str, Any]:
    """A merge patch for /status with only the fields that change (None removes a field); {} if none."""
    current = llv.status(obj)
    patch: dict[str, Any] = {}
    for key, given in changes.items():
        value: Any = given.value if isinstance(given, StrEnum) else given
        if key == "conditions":
            value = _merge_conditions(current.get("conditions") or [], value)
        if value is None:
            if current.get(key) is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch


def health_condition(
    obj: llv.Wire, lv: LogicalVolume | None, pool: LogicalVolume | None, *, missing: bool = False
) -> Condition:
    """The Healthy condition for an LV as lvs shows it (``pool``: a thin volume's pool row)."""
    if missing or lv is None:
        status, reason = "False", "Missing"
        message = f"the LV is missing on node {llv.spec(obj).get('nodeName')}; its data is not there"
    else:
        condition = volume_condition(lv, pool)
        status = "False" if condition.abnormal else "True"
        reason = "Healthy" if not condition.abnormal else "Abnormal"
        if lv.is_invalid_snapshot:
            reason = SNAPSHOT_INVALID_REASON
        message = condition.message
    return {
        "type": HEALTHY_CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": int(obj["metadata"].get("generation") or 0),
        "lastTransitionTime": now(),
    }
