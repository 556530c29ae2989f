"""Waiting on LogicalVolume resources: the controller's half of the handshake with a node's agent.

Creating a resource (or taking the one an earlier attempt created for the same CSI name), waiting
until the agent reports it ``Ready`` or ``Failed``, and deleting one and waiting until the agent has
let it go. Each wait follows the watch cache and also asks the apiserver every ``recheck`` seconds;
one past the deadline is DEADLINE_EXCEEDED, naming the node whose agent did not answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from localcsi.core.errors import AlreadyExists, CoreError, DeadlineExceeded, Internal, NotFound
from localcsi.driver.cluster_resources import Resource
from localcsi.driver.cluster_views import Done, ResourceApi, Same, TimedOut, View, wait_for
from localcsi.k8s import errors as kube
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import Phase

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
# How often a wait also asks the apiserver, in case a watch event is late or lost.
RECHECK_SECONDS = 5.0
# How long a failed resource's deletion is awaited before its error is reported anyway.
DISCARD_SECONDS = 10.0
# Touched to make the agent retry a refused deletion or expansion now (any change wakes it).
RETRY_ANNOTATION = "localcsi.io/retry-requested"


class ResourceWaits:
    """Create, await and remove LogicalVolumes through ``volumes_api``, watching ``volume_view``."""

    def __init__(
        self,
        volumes_api: ResourceApi,
        volume_view: View,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        recheck: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.volumes_api = volumes_api
        self.volume_view = volume_view
        self.timeout = timeout
        self.recheck = recheck
        self.clock = clock

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, name: str, done: Done, deadline: float) -> Resource | None:
        return wait_for(
            self.volumes_api, self.volume_view, name, done, deadline, recheck=self.recheck, clock=self.clock
        )

    def _wait_ready(self, obj: Resource, deadline: float) -> Resource:
        uid = llv.uid(obj)
        same = Same(uid)

        def done(current: Resource | None, fresh: bool) -> bool:
            if same.gone(current, fresh):
                raise NotFound(f"LogicalVolume {llv.name(obj)} was deleted while it was being created")
            if current is None or llv.uid(current) != uid:
                return False
            return llv.phase(current) in (Phase.READY, Phase.FAILED) or llv.is_deleting(current)

        try:
            current = self._wait(llv.name(obj), done, deadline)
        except TimedOut as timeout:
            raise self._late(obj, timeout.last, "to be made") from None
        assert current is not None
        if llv.is_deleting(current):
            raise NotFound(f"LogicalVolume {llv.name(obj)} is being deleted; it was deleted while being created")
        if llv.phase(current) is Phase.FAILED:
            error = llv.error_from_status(current)
            self._discard(current, deadline)
            raise error
        return current

    def _wait_gone(self, obj: Resource, deadline: float, stale: frozenset[str] = frozenset()) -> None:
        """Wait until the resource is gone; an agent's refusal is raised unless it is in a ``stale`` version."""
        uid = llv.uid(obj)
        same = Same(uid)

        def gone(current: Resource | None, fresh: bool) -> bool:
            if current is not None and llv.uid(current) == uid and _refused(current, stale):
                raise llv.error_from_status(current)  # the agent could not delete it: report why
            return same.gone(current, fresh)

        try:
            self._wait(llv.name(obj), gone, deadline)
        except TimedOut as timeout:
            raise self._late(obj, timeout.last, "to be deleted") from None

    def _nudge(self, obj: Resource) -> frozenset[str]:
        """Touch an annotation so the agent retries at once instead of after its backoff. The versions
        before and after the touch: an error reported in them is the last attempt's, not the next one's."""
        stamp = {RETRY_ANNOTATION: datetime.now(tz=UTC).isoformat(timespec="microseconds")}
        touched = self.volumes_api.patch(llv.name(obj), {"metadata": {"annotations": stamp}})
        return frozenset({_version(obj), _version(touched)})

    def _remove(self, obj: Resource, deadline: float) -> None:
        """Delete the resource and wait until the agent has removed its LV and let it go."""
        stale: frozenset[str] = frozenset()
        if llv.is_deleting(obj) and llv.status(obj).get("code"):
            stale = self._nudge(obj)  # refused before: wait for the agent's next attempt
        self.volumes_api.delete(llv.name(obj))
        self._wait_gone(obj, deadline, stale)

    def _discard(self, obj: Resource, deadline: float) -> None:
        """Delete a failed resource and give the agent a moment to let it go; never raises for that."""
        try:
            self.volumes_api.delete(llv.name(obj))
            self._wait_gone(obj, min(deadline, self.clock() + DISCARD_SECONDS))
        except (CoreError, kube.KubeError) as exc:
            log.info("failed LogicalVolume %s not removed yet: %s", llv.name(obj), exc)

    def _late(self, obj: Resource, last: Resource | None, what: str) -> DeadlineExceeded:
        node = llv.spec(obj).get("nodeName")
        state = "gone" if last is None else f"phase {llv.phase(last)}"
        said = llv.status(last).get("message") if last is not None else None
        return DeadlineExceeded(
            f"LogicalVolume {llv.name(obj)} on node {node} is still waiting {what} after {self.timeout:g}s "
            f"({state}{f'; agent: {said}' if said else ''}); the agent on {node} may be down or busy. "
            "Retrying the request waits on the same LogicalVolume"
        )

    def _deadline(self) -> float:
        return self.clock() + self.timeout

    def _create(self, body: llv.LogicalVolume, deadline: float, mismatch: Callable[[Resource], str | None]) -> Resource:
        """Create the resource, or take the one an earlier attempt created for the same CSI name."""
        name = llv.name(body)
        while True:
            try:
                return self.volumes_api.create(body)
            except kube.AlreadyExists:
                existing = self.volumes_api.get(name)
            if existing is None:
                continue  # deleted in between
            if llv.is_deleting(existing):
                self._wait_gone(existing, deadline)
                continue
            ours = llv.spec(existing).get("csiName") == llv.spec(body)["csiName"]
            if not ours or llv.resource_kind(existing) is not llv.resource_kind(body):
                raise Internal(
                    f"LogicalVolume {name} exists for {llv.spec(existing).get('kind')} "
                    f"{llv.spec(existing).get('csiName')!r}, not {llv.spec(body)['csiName']!r}; "
                    f"inspect it with `kubectl get llv {name} -o yaml`"
                )
            reason = mismatch(existing)
            if reason:
                raise AlreadyExists(
                    f"{llv.spec(body)['csiName']!r} already exists as LogicalVolume {name} but {reason}; "
                    "repeat the original request or use another name"
                )
            return existing


def _version(obj: Resource) -> str:
    return str(obj["metadata"].get("resourceVersion", ""))


def _refused(obj: Resource, stale: frozenset[str]) -> bool:
    """The agent reported that it could not delete the LV (in a version not known to be stale)."""
    return llv.phase(obj) is Phase.DELETING and bool(llv.status(obj).get("code")) and _version(obj) not in stale
