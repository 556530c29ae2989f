"""The agent's LogicalVolume reconciler: makes, grows and removes this node's LVs as the resources ask.

It lists and watches only the resources labelled with its node, and runs each one's plan with
``LocalLvmBackend`` -- the code standalone mode runs -- so creation is idempotent by LV name and tags:
after a kill -9 anywhere, the next reconcile finishes the same LV instead of making a second one.

Per resource: add the finalizer (before any LV exists, so the LV is always removed before the
resource goes), execute the plan, then write status with the size ``lvs`` reports. A deleted
resource has its LV wiped and removed, then its finalizer dropped. One worker at a time handles a
given resource. Errors that retrying can fix (lvm2 hiccups, a busy LV) are retried with backoff and
reported in status meanwhile; the others make a create ``Failed`` with the error's code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from localcsi.agent.lv_exclusive import ExclusiveVolumes
from localcsi.agent.lv_queue import Backoff, WorkQueue
from localcsi.agent.lv_status import health_condition, status_patch
from localcsi.core.errors import (
    Aborted,
    CoreError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from localcsi.core.ids import LvRef, parse_volume_id
from localcsi.core.model import Volume
from localcsi.core.nodestorage import StorageSpec
from localcsi.core.params import VolumeType
from localcsi.driver.backend import io_limits, is_ready, snapshot_plan, volume_plan
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.k8s import errors as kube
from localcsi.k8s.informer import Informer
from localcsi.k8s.resources import LOGICAL_VOLUME, CustomResources
from localcsi.k8s.rest import KubeApi
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import CommandRunner, SubprocessRunner
from localcsi.metrics.volumes import VOLUMES
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import FINALIZER, Phase, ResourceKind
from localcsi.resources.meta import Condition

log = logging.getLogger(__name__)

# A LogicalVolume as the apiserver's JSON; read through localcsi.resources.logicalvolume's accessors.
Resource = dict[str, Any]

# Errors a later attempt may not meet: retried with backoff; everything else fails the create.
TRANSIENT = (Aborted, Unavailable, Internal, DeadlineExceeded)
DEFAULT_WORKERS = 4  # a long block copy must not hold up every other volume on the node
DEFAULT_RESYNC_SECONDS = 60.0


class Stopping(Protocol):
    """What the reconciler uses of ``localcsi.lifecycle.Lifecycle``."""

    should_exit: threading.Event

    def wait(self, timeout: float | None = None) -> bool: ...


class Resources(Protocol):
    """What the reconciler uses of ``CustomResources``."""

    def get(self, name: str) -> Resource | None: ...
    def list(self, label_selector: str | None = None) -> tuple[list[Resource], str]: ...
    def patch(self, name: str, merge_patch: Resource) -> Resource: ...
    def patch_status(self, name: str, status: Resource) -> Resource: ...
    def watch(self, resource_version: str, timeout_seconds: int, label_selector: str | None = None) -> Any: ...


class _Retry(Exception):
    """Reconcile this resource again after a backoff (the status says why, when it matters)."""


class LogicalVolumeReconciler:
    def __init__(
        self,
        api: KubeApi | None,
        node: str,
        runner: CommandRunner | None,
        lifecycle: Stopping,
        *,
        resources: Resources | None = None,
        backend: LocalLvmBackend | None = None,
        vg_allowed: Callable[[str], bool] = lambda _: True,
        workers: int = DEFAULT_WORKERS,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
        backoff: Backoff | None = None,
        storage_spec: Callable[[], StorageSpec] = StorageSpec,
        exclusive: ExclusiveVolumes | None = None,
    ) -> None:
        if resources is None:
            assert api is not None, "a KubeApi or resources is needed"
            resources = CustomResources(api, LOGICAL_VOLUME)
        self.resources = resources
        self.node = node
        self.lifecycle = lifecycle
        runner = runner or SubprocessRunner()
        lvm = Lvm(runner)
        self.backend = backend or LocalLvmBackend(lvm, node, vg_allowed=vg_allowed)
        # Device and MountPoint volumes, on what the node's NodeLocalStorage spec selects (nothing by default).
        self.exclusive = exclusive or ExclusiveVolumes(node, runner, storage_spec, lvm=lvm)
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.backoff = backoff or Backoff()
        self.queue = WorkQueue()
        selector = llv.node_selector(node)
        self.informer = Informer(
            lambda: resources.list(selector),
            lambda version, seconds: resources.watch(version, seconds, selector),
        )
        self.informer.add_handler(lambda _event, obj: self.queue.add(llv.name(obj)))

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Reconcile until the lifecycle says stop; a worker busy with a long copy is left to finish."""
        stop = self.lifecycle.should_exit
        self.informer.start(stop.is_set, name="lv-informer")
        threads = [
            threading.Thread(target=self._work, name=f"lv-worker-{index}", daemon=True) for index in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        log.info("reconciling LogicalVolumes of node %s with %d workers", self.node, self.workers)
        while not self.lifecycle.wait(self.resync_seconds):
            for name in self.informer.cache():
                self.queue.add(name)
        self.queue.close()
        for thread in threads:
            thread.join(timeout=5)

    def _work(self) -> None:
        while (name := self.queue.get()) is not None:
            try:
                self.reconcile(name)
            except _Retry:
                VOLUMES.reconciled(self.node, "retry")
                self.queue.add(name, delay=self.backoff.failed(name))
            except kube.Conflict:
                VOLUMES.reconciled(self.node, "conflict")
                self.queue.add(name, delay=self.backoff.first)  # changed meanwhile: read it again
            except Exception:
                VOLUMES.reconciled(self.node, "error")
                log.exception("reconciling LogicalVolume %s failed unexpectedly", name)
                self.queue.add(name, delay=self.backoff.failed(name))
            else:
                VOLUMES.reconciled(self.node, "ok")
                self.backoff.succeeded(name)
            finally:
                self.queue.done(name)

    # -- one resource ------------------------------------------------------------------------

    def reconcile(self, name: str) -> None:
        cached = self.informer.get(name)
        if cached is not None and _steady(cached):
            self._check(cached)  # a resync: nothing to change, report health from the shared lvs view
            return
        obj = self.resources.get(name)  # act only on the apiserver's current version, never a stale cache
        if obj is None or llv.spec(obj).get("nodeName") != self.node:
            return
        if llv.is_deleting(obj):
            self._delete(obj)
            return
        if llv.phase(obj) is Phase.FAILED and _observed(obj):
            return  # final: the controller deletes it
        obj = self._with_finalizer(obj)
        try:
            if llv.resource_kind(obj) is ResourceKind.VOLUME and llv.volume_type(obj) is not VolumeType.LVM:
                self._exclusive(obj)
            elif llv.resource_kind(obj) is ResourceKind.VOLUME:
                self._volume(obj)
            else:
                self._snapshot(obj)
        except CoreError as error:
            self._failed(obj, error)

    def _with_finalizer(self, obj: Resource) -> Resource:
        finalizers: list[str] = obj["metadata"].get("finalizers") or []
        if FINALIZER in finalizers:
            return obj
        version = obj["metadata"]["resourceVersion"]
        patch = {"metadata": {"finalizers": [*finalizers, FINALIZER], "resourceVersion": version}}
        return self.resources.patch(llv.name(obj), patch)

    def _status(self, obj: Resource, **changes: Any) -> None:
        """Write what changes; ``obj`` becomes the written version (a status write bumps resourceVersion)."""
        patch = status_patch(obj, **changes)
        if patch:
            obj.update(self.resources.patch_status(llv.name(obj), patch))

    def _failed(self, obj: Resource, error: CoreError) -> None:
        """Report an error; a transient one, or one while Ready (a refused expansion), is retried."""
        code = llv.code_name(error.code)
        generation = obj["metadata"].get("generation")
        if isinstance(error, TRANSIENT) or llv.phase(obj) is Phase.READY:
            log.warning("LogicalVolume %s: %s (will retry): %s", llv.name(obj), code, error.message)
            self._status(obj, code=code, message=error.message, observedGeneration=generation)
            raise _Retry from error
        log.warning("LogicalVolume %s failed: %s: %s", llv.name(obj), code, error.message)
        self._status(obj, phase=Phase.FAILED, code=code, message=error.message, observedGeneration=generation)
        VOLUMES.failed(self.node, obj, code)

    # -- volumes -----------------------------------------------------------------------------

    def _volume(self, obj: Resource) -> None:
        plan = volume_plan(obj)
        existing = self.backend.get_volume(plan.ref)
        if existing is not None and existing.name != plan.name:
            raise InvalidArgument(
                f"LV {plan.ref.vg}/{plan.ref.lv} on node {self.node} belongs to {existing.name!r}, not "
                f"{plan.name!r}; it is left alone"
            )
        if llv.phase(obj) is Phase.READY and existing is None:
            self._status(obj, message=f"LV {plan.ref.vg}/{plan.ref.lv} is missing on node {self.node}")
            self._healthy(obj, None, missing=True)
            return
        if existing is None or not is_ready(existing):
            if plan.content is not None and not self._has(plan.content.lv):
                raise NotFound(f"the content source {plan.content.source.id} does not exist on node {self.node}")
            self._status(obj, phase=Phase.CREATING, code=None, message=f"creating {plan.ref.vg}/{plan.ref.lv}")
            existing = self.backend.create_volume(plan)
        if existing.size_bytes < plan.placement.size_bytes:
            self._status(obj, code=None, message=f"growing to {plan.placement.size_bytes} bytes")
            existing = self.backend.expand_volume(existing, plan.placement.size_bytes)
        limits = io_limits(plan.tags())
        if io_limits(existing.lv.tags) != limits:
            existing = self.backend.set_io_limits(existing, limits)  # the node plugin applies them to pods
        self._ready(obj, existing)

    def _exclusive(self, obj: Resource) -> None:
        """A Device or MountPoint volume: take the smallest fitting disk or mount point the spec selects."""
        kind = llv.volume_type(obj)
        generation = obj["metadata"].get("generation")
        if llv.phase(obj) is Phase.READY:  # nothing in its spec can change: report whether it is still there
            self._check(obj)
            self._status(obj, observedGeneration=generation)
            return
        self._status(obj, phase=Phase.CREATING, code=None, message=f"taking a whole {kind} for {llv.name(obj)}")
        volume, taken = self.exclusive.create(obj)
        self._status(
            obj,
            phase=Phase.READY,
            currentSize=volume.size_bytes,
            volumeId=volume.id,
            message=f"ready on {taken}",
            code=None,
            observedGeneration=generation,
            conditions=[health_condition(obj, volume.lv, None)],
            **({"device": taken} if kind is VolumeType.DEVICE else {"mountPoint": taken}),
        )
        VOLUMES.ready(self.node, obj)

    def _has(self, ref: LvRef) -> bool:
        view = self.backend.view
        return ref.node == self.node and (view.lv(ref.vg, ref.lv) or view.lv(ref.vg, ref.lv, view.read())) is not None

    def _ready(self, obj: Resource, volume: Volume) -> None:
        lv = self.backend.lvm.get_lv(volume.ref.vg, volume.ref.lv)  # the real size, from lvs itself
        if lv is None:
            raise Internal(f"{volume.ref.vg}/{volume.ref.lv} was just made but lvs does not show it")
        was_ready = llv.phase(obj) is Phase.READY
        self._status(
            obj,
            phase=Phase.READY,
            currentSize=lv.size_bytes,
            volumeId=volume.id,
            message="ready",
            code=None,
            observedGeneration=obj["metadata"].get("generation"),
            conditions=[self._health(obj, lv)],
        )
        if not was_ready:
            VOLUMES.ready(self.node, obj)  # provisioning time: creation to this first Ready

    def _health(self, obj: Resource, lv: Any) -> Condition:
        pool = self.backend.view.lv(lv.vg, lv.pool_lv) if lv.pool_lv else None
        return health_condition(obj, lv, pool)

    def _healthy(self, obj: Resource, lv: Any, *, missing: bool = False) -> None:
        self._status(obj, conditions=[health_condition(obj, lv, None, missing=missing)])

    def _check(self, obj: Resource) -> None:
        """A Ready resource with nothing to do: refresh its size and health from the cached lvs view
        (one ``lvm fullreport`` serves every resource on the node)."""
        at = llv.ref(obj)
        if llv.resource_kind(obj) is ResourceKind.VOLUME and llv.volume_type(obj) is not VolumeType.LVM:
            found = self.exclusive.find(obj)  # the cached view holds only the VGs of LVM volumes
            lv = found.lv if found is not None else None
        else:
            lv = self.backend.view.lv(at.vg, at.lv)
        if lv is None:
            self._healthy(obj, None, missing=True)
            return
        self._status(obj, currentSize=lv.size_bytes, conditions=[self._health(obj, lv)])

    # -- snapshots ---------------------------------------------------------------------------

    def _snapshot(self, obj: Resource) -> None:
        at = llv.ref(obj)
        existing = self.backend.get_snapshot(at)
        csi_name = llv.spec(obj)["csiName"]
        if existing is not None and existing.name != csi_name:
            raise InvalidArgument(
                f"LV {at.vg}/{at.lv} on node {self.node} belongs to {existing.name!r}, not {csi_name!r}; "
                "it is left alone"
            )
        if llv.phase(obj) is Phase.READY:
            lv = existing.lv if existing is not None else None
            self._status(obj, conditions=[health_condition(obj, lv, None, missing=lv is None)])
            return
        source_id = llv.source_volume_id(obj)
        source_ref = parse_volume_id(source_id)
        source = self.backend.get_volume(source_ref) if source_ref.node == self.node else None
        if source is None or not is_ready(source):
            raise NotFound(f"source volume {source_id} does not exist on node {self.node}")
        self._status(obj, phase=Phase.CREATING, code=None, message=f"snapshotting {source_id}")
        snapshot = self.backend.create_snapshot(snapshot_plan(obj, source))
        lv = self.backend.lvm.get_lv(at.vg, at.lv)
        self._status(
            obj,
            phase=Phase.READY,
            currentSize=lv.size_bytes if lv is not None else snapshot.lv.size_bytes,
            volumeId=snapshot.id,
            message="ready",
            code=None,
            observedGeneration=obj["metadata"].get("generation"),
            conditions=[health_condition(obj, lv or snapshot.lv, None)],
        )
        VOLUMES.ready(self.node, obj)  # only reached from a phase that was not Ready

    # -- deletion ----------------------------------------------------------------------------

    def _delete(self, obj: Resource) -> None:
        finalizers: list[str] = obj["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        self._status(obj, phase=Phase.DELETING, code=None, message="wiping and removing the LV")
        try:
            self._remove_lv(obj)
        except CoreError as error:
            self._status(obj, code=llv.code_name(error.code), message=error.message)
            log.warning("LogicalVolume %s: deletion refused (will retry): %s", llv.name(obj), error.message)
            raise _Retry from error
        version = obj["metadata"]["resourceVersion"]
        left = [name for name in finalizers if name != FINALIZER]
        try:
            self.resources.patch(llv.name(obj), {"metadata": {"finalizers": left, "resourceVersion": version}})
        except kube.NotFound:
            return
        log.info("LogicalVolume %s: LV removed, finalizer released", llv.name(obj))

    def _remove_lv(self, obj: Resource) -> None:
        self.backend.view.changed()  # decide from a fresh lvs, never a cached one
        csi_name = llv.spec(obj).get("csiName")
        try:
            at = llv.ref(obj)
        except CoreError:
            return  # names no LV this driver could have made
        if llv.resource_kind(obj) is ResourceKind.VOLUME and llv.volume_type(obj) is not VolumeType.LVM:
            self.exclusive.remove(obj)
        elif llv.resource_kind(obj) is ResourceKind.VOLUME:
            volume = self.backend.get_volume(at)
            if volume is not None and volume.name == csi_name:
                self.backend.delete_volume(volume)
        else:
            snapshot = self.backend.get_snapshot(at)
            if snapshot is not None and snapshot.name == csi_name:
                self.backend.delete_snapshot(snapshot)


def _steady(obj: Resource) -> bool:
    """Ready, nothing new asked for: a resync only refreshes health."""
    if llv.is_deleting(obj) or llv.phase(obj) is not Phase.READY or not _observed(obj):
        return False
    if FINALIZER not in (obj["metadata"].get("finalizers") or []):
        return False
    if llv.resource_kind(obj) is ResourceKind.VOLUME:
        return int(llv.status(obj).get("currentSize") or 0) >= int(llv.spec(obj).get("size") or 0)
    return True


def _observed(obj: Resource) -> bool:
    observed = llv.status(obj).get("observedGeneration")
    return observed is not None and int(observed) >= int(obj["metadata"].get("generation") or 0)
