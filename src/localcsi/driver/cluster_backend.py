"""Cluster mode's backend: each plan becomes a LogicalVolume resource; the node's agent carries it out.

The controller never calls a node. It writes the plan as a LogicalVolume named after the LV (so a
retry finds the resource of its first attempt), then waits until the agent on that node reports
``Ready`` or ``Failed``. Waiting longer than ``timeout`` is DEADLINE_EXCEEDED: the work goes on, and
the CO's retry waits on the same resource. A ``Failed`` resource is deleted after its error is
reported, so the next retry places the volume afresh.

Reads come from list+watch caches of LogicalVolumes and NodeLocalStorages (no apiserver call per
ListVolumes); decisions that must not act on a stale cache (does the resource exist, its size before
an expansion) read the resource from the apiserver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from localcsi.core.errors import CoreError, FailedPrecondition, Internal, NotFound, Unavailable
from localcsi.core.health import Condition
from localcsi.core.ids import LvRef
from localcsi.core.iolimits import IoLimits
from localcsi.core.model import Snapshot, Volume
from localcsi.core.node_choice import most_free_first
from localcsi.core.params import VolumeParams
from localcsi.core.sizes import format_bytes
from localcsi.driver import cluster_resources as res
from localcsi.driver.backend import NodeStorage, SnapshotPlan, VolumePlan
from localcsi.driver.cluster_resources import Resource
from localcsi.driver.cluster_storage import node_storage
from localcsi.driver.cluster_views import InformerView, ResourceApi, Same, TimedOut, View
from localcsi.driver.cluster_waits import (
    DEFAULT_TIMEOUT,
    RECHECK_SECONDS,
    RETRY_ANNOTATION,
    ResourceWaits,
    _version,
)
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources
from localcsi.k8s.rest import KubeApi
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import Phase, ResourceKind

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TIMEOUT", "RETRY_ANNOTATION", "ClusterBackend", "cluster_backend"]


class ClusterBackend(ResourceWaits):
    def __init__(
        self,
        volumes: ResourceApi,
        storages: ResourceApi,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        volume_view: View | None = None,
        storage_view: View | None = None,
        recheck: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storages_api = storages
        self._informer_views: list[tuple[str, InformerView]] = []
        view = volume_view or self._informer_view("logicalvolumes", volumes)
        super().__init__(volumes, view, timeout=timeout, recheck=recheck, clock=clock)
        self.storage_view = storage_view or self._informer_view("nodelocalstorages", storages)
        self._stop = threading.Event()

    def _informer_view(self, name: str, api: ResourceApi) -> InformerView:
        view = InformerView(api)
        self._informer_views.append((name, view))
        return view

    def start(self, sync_timeout: float = 30.0) -> ClusterBackend:
        """Start the caches and wait for their first list: UNAVAILABLE if the apiserver cannot be listed."""
        for name, view in self._informer_views:
            view.start(self._stop.is_set, name=f"informer-{name}")
        for name, view in self._informer_views:
            if not view.wait_synced(sync_timeout):
                raise Unavailable(f"could not list {name} within {sync_timeout:g}s; check the kubeconfig and RBAC")
        return self

    def stop(self) -> None:
        self._stop.set()

    # -- reads -------------------------------------------------------------------------------

    def nodes(self) -> tuple[str, ...]:
        """Nodes whose agent reports storage, the one with the most free space first (Immediate binding)."""
        storages = {s.node: (s.vgs, s.pools) for s in map(self._storage, self.storage_view.items()) if s.vgs}
        return tuple(most_free_first(storages, VolumeParams()))

    def _storage(self, nls: Resource) -> NodeStorage:
        try:
            return node_storage(nls)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring NodeLocalStorage %s: unreadable status: %r", nls["metadata"].get("name"), exc)
            return NodeStorage(str(nls["metadata"].get("name")), (), ())

    def storage(self, node: str) -> NodeStorage:
        nls = self.storage_view.get(node)
        return self._storage(nls) if nls is not None else NodeStorage(node, (), ())

    def _volume(self, obj: Resource) -> Volume | None:
        try:
            return res.resource_volume(obj)
        except (CoreError, KeyError, TypeError, ValueError) as exc:  # one bad resource must not hide the rest
            log.warning("ignoring LogicalVolume %s: %r", llv.name(obj), exc)
            return None

    def _snapshot(self, obj: Resource) -> Snapshot | None:
        try:
            return res.resource_snapshot(obj)
        except (CoreError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring LogicalVolume %s: %r", llv.name(obj), exc)
            return None

    def volumes(self) -> list[Volume]:
        return [volume for obj in self.volume_view.items() if (volume := self._volume(obj)) is not None]

    def snapshots(self) -> list[Snapshot]:
        return [snap for obj in self.volume_view.items() if (snap := self._snapshot(obj)) is not None]

    def _cached_or_fetched(self, name: str) -> Resource | None:
        return self.volume_view.get(name) or self.volumes_api.get(name)

    def _at(self, ref: LvRef) -> Resource | None:
        obj = self._cached_or_fetched(ref.lv)
        if obj is None or llv.spec(obj).get("nodeName") != ref.node or llv.spec(obj).get("vgName") != ref.vg:
            return None
        return obj

    def get_volume(self, ref: LvRef) -> Volume | None:
        obj = self._at(ref)
        return self._volume(obj) if obj is not None else None

    def get_snapshot(self, ref: LvRef) -> Snapshot | None:
        obj = self._at(ref)
        return self._snapshot(obj) if obj is not None else None

    def find_volume(self, lv_name: str) -> Volume | None:
        """The volume of that LV name once its creation has ended: an unfinished one is awaited."""
        obj = self._settled(lv_name, ResourceKind.VOLUME)
        return self._volume(obj) if obj is not None else None

    def find_snapshot(self, lv_name: str) -> Snapshot | None:
        obj = self._settled(lv_name, ResourceKind.SNAPSHOT)
        return self._snapshot(obj) if obj is not None else None

    def _settled(self, lv_name: str, kind: ResourceKind) -> Resource | None:
        """The resource of a create that ended well; None if there is none or it failed (it is removed)."""
        deadline = self.clock() + self.timeout
        obj = self.volumes_api.get(lv_name)
        if obj is None or llv.resource_kind(obj) is not kind:
            return None
        if llv.is_deleting(obj):
            self._wait_gone(obj, deadline)
            return None
        if llv.phase(obj) is Phase.FAILED:  # an earlier attempt failed: remove it, the caller starts over
            self._discard(obj, deadline)
            self._wait_gone(obj, deadline)
            return None
        return self._wait_ready(obj, deadline)

    def condition(self, volume: Volume) -> Condition:
        obj = self.volume_view.get(volume.ref.lv)
        healthy = llv.condition(obj, llv.HEALTHY_CONDITION) if obj is not None else None
        if healthy is None:
            return Condition(False, "the node agent has not reported this volume's health yet")
        return Condition(healthy.get("status") == "False", str(healthy.get("message") or ""))

    # -- plans -------------------------------------------------------------------------------

    def create_volume(self, plan: VolumePlan) -> Volume:
        deadline = self._deadline()
        obj = self._create(res.volume_resource(plan), deadline, lambda existing: res.mismatch(existing, plan))
        volume = self._volume(self._wait_ready(obj, deadline))
        if volume is None:
            raise Internal(f"LogicalVolume {plan.ref.lv} is Ready but does not read back as a volume")
        log.info("volume %s (%s) ready on node %s: %s", plan.name, volume.id, volume.ref.node,
                 format_bytes(volume.size_bytes))  # fmt: skip
        return volume

    def delete_volume(self, volume: Volume) -> None:
        deadline = self._deadline()
        obj = self.volumes_api.get(volume.ref.lv)
        if obj is None:
            return
        thick = sorted(
            llv.name(snap)
            for snap in self.volume_view.items()
            if llv.resource_kind(snap) is ResourceKind.SNAPSHOT
            and llv.source_volume_id(snap) == volume.id
            and llv.spec(snap).get("cowSize") is not None
        )
        if thick:
            raise FailedPrecondition(
                f"volume {volume.id} has thick snapshots {thick}: they live on it; delete them first"
            )
        self._remove(obj, deadline)
        log.info("volume %s (%s) deleted", volume.name, volume.id)

    def expand_volume(self, volume: Volume, size_bytes: int) -> Volume:
        deadline = self._deadline()
        obj = self._existing(volume)
        stale: frozenset[str] = frozenset()
        if int(llv.spec(obj)["size"]) < size_bytes:
            obj = self.volumes_api.patch(volume.ref.lv, {"spec": {"size": size_bytes}})
        elif llv.status(obj).get("code"):
            stale = self._nudge(obj)  # the same expansion failed before: wait for the agent's next attempt

        def grown(current: Resource) -> bool:
            return int(llv.status(current).get("currentSize") or 0) >= size_bytes

        return self._wait_applied(obj, volume, grown, f"to grow to {size_bytes} bytes", deadline=deadline, stale=stale)

    def set_io_limits(self, volume: Volume, limits: IoLimits) -> Volume:
        deadline = self._deadline()
        obj = self._existing(volume)
        wanted = limits.as_strings()
        if (llv.spec(obj).get("ioLimits") or {}) != wanted:
            obj = self.volumes_api.patch(volume.ref.lv, {"spec": {"ioLimits": wanted}})
        generation = int(obj["metadata"].get("generation") or 0)

        def applied(current: Resource) -> bool:
            observed = int(llv.status(current).get("observedGeneration") or 0)
            return observed >= generation and not llv.status(current).get("code")

        changed = self._wait_applied(obj, volume, applied, f"to apply IO limits {limits.throttle()}", deadline=deadline)
        log.info("volume %s IO limits now %s", volume.id, limits.throttle())
        return changed

    def _existing(self, volume: Volume) -> Resource:
        obj = self.volumes_api.get(volume.ref.lv)
        if obj is None:
            raise NotFound(f"volume {volume.id} does not exist")
        return obj

    def _wait_applied(
        self,
        obj: Resource,
        volume: Volume,
        satisfied: Callable[[Resource], bool],
        what: str,
        *,
        deadline: float,
        stale: frozenset[str] = frozenset(),
    ) -> Volume:
        """Wait until the agent has carried out a change to a Ready volume's spec, or reported why not."""
        generation = int(obj["metadata"].get("generation") or 0)
        uid = llv.uid(obj)
        same = Same(uid)

        def done(current: Resource | None, fresh: bool) -> bool:
            if same.gone(current, fresh):
                raise NotFound(f"volume {volume.id} was deleted while waiting {what}")
            if current is None or llv.uid(current) != uid:
                return False
            if satisfied(current):
                return True
            observed = int(llv.status(current).get("observedGeneration") or 0)
            if observed >= generation and llv.status(current).get("code") and _version(current) not in stale:
                raise llv.error_from_status(current)
            return False

        try:
            current = self._wait(volume.ref.lv, done, deadline)
        except TimedOut as timeout:
            raise self._late(obj, timeout.last, what) from None
        assert current is not None
        changed = self._volume(current)
        if changed is None:
            raise Internal(f"LogicalVolume {volume.ref.lv} no longer reads back as a volume")
        return changed

    def create_snapshot(self, plan: SnapshotPlan) -> Snapshot:
        deadline = self._deadline()

        def mismatch(existing: Resource) -> str | None:
            source = llv.source_volume_id(existing)
            return f"it is a snapshot of {source}" if source != plan.source.id else None

        obj = self._create(res.snapshot_resource(plan), deadline, mismatch)
        snapshot = self._snapshot(self._wait_ready(obj, deadline))
        if snapshot is None:
            raise Internal(f"LogicalVolume {plan.ref.lv} is Ready but does not read back as a snapshot")
        return snapshot

    def delete_snapshot(self, snapshot: Snapshot) -> None:
        deadline = self._deadline()
        obj = self.volumes_api.get(snapshot.ref.lv)
        if obj is None:
            return
        self._remove(obj, deadline)


def cluster_backend(api: KubeApi, *, timeout: float = DEFAULT_TIMEOUT) -> ClusterBackend:
    """The backend over an apiserver, caches not started yet (call ``start``)."""
    return ClusterBackend(
        CustomResources(api, LOGICAL_VOLUME), CustomResources(api, NODE_LOCAL_STORAGE), timeout=timeout
    )
