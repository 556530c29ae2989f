"""Writing NodeLocalStorage status only when it changed, and the agent's Events.

"Changed" ignores ``lastUpdateTime``. The apiserver may drop fields its schema does not know, so a
write is also skipped when the agent would send exactly what it sent last time and the resource
still holds what the apiserver answered then: a pruned field does not cause a write every cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from localcsi.core.nodestorage_init import Refusal
from localcsi.core.nodestorage_status import status_changed, without_update_time

log = logging.getLogger(__name__)

WARNING = "Warning"
NORMAL = "Normal"
REASON_REFUSED = "DeviceRefused"
REASON_VG_CREATED = "VolumeGroupCreated"
REASON_VG_FAILED = "VolumeGroupCreateFailed"
REASON_MOUNT_POINT_FAILED = "MountPointInitFailed"
REASON_ORPHAN = "OrphanVolume"
REASON_ORPHAN_REMOVED = "OrphanVolumeRemoved"


class StatusWriter(Protocol):
    def patch_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]: ...


class Recorder(Protocol):
    def record(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None: ...


def _projection(status: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    status = status or {}
    return without_update_time({key: status.get(key) for key in keys})


class StatusPublisher:
    def __init__(self, resources: StatusWriter, recorder: Recorder | None = None) -> None:
        self.resources = resources
        self.recorder = recorder
        self._last: tuple[dict[str, Any], dict[str, Any]] | None = None  # (sent, stored), both without time
        self._reported: dict[str, set[str]] = {}

    def _unchanged(self, current: Mapping[str, Any] | None, status: Mapping[str, Any]) -> bool:
        if self._last is not None:
            sent, stored = self._last
            if without_update_time(status) == sent and _projection(current, status) == stored:
                return True
        return not status_changed(current, status)

    def publish(self, nls: Mapping[str, Any], status: dict[str, Any]) -> bool:
        """Write ``status`` to ``nls`` unless it says nothing new; True when it wrote."""
        if self._unchanged(nls.get("status"), status):
            return False
        name = str(nls["metadata"]["name"])
        stored = self.resources.patch_status(name, status)
        self._last = (without_update_time(status), _projection(stored.get("status"), status))
        return True

    def event(self, nls: Mapping[str, Any] | None, event_type: str, reason: str, message: str) -> None:
        log.log(logging.WARNING if event_type == WARNING else logging.INFO, "%s: %s", reason, message)
        if self.recorder is not None and nls is not None:
            self.recorder.record(dict(nls), event_type, reason, message)

    def report_while_it_lasts(self, nls: Mapping[str, Any] | None, reason: str, problems: Iterable[str]) -> None:
        """One Warning per problem while it lasts; one that goes away and comes back is reported again."""
        current = set(problems)
        for text in sorted(current - self._reported.get(reason, set())):
            self.event(nls, WARNING, reason, text)
        self._reported[reason] = current

    def report_refusals(self, nls: Mapping[str, Any] | None, refusals: Iterable[Refusal]) -> None:
        texts = (f"{refusal}; nothing was changed on the node" for refusal in refusals)
        self.report_while_it_lasts(nls, REASON_REFUSED, texts)
