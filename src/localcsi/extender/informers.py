"""Informers for every kind the extender's view needs, feeding it through the extender's lock.

NodeLocalStorage, PVs, PVCs, Pods and StorageClasses are required. LogicalVolumes and the snapshot
kinds are watched when their CRDs are installed and readable; without snapshots, a restore from a
VolumeSnapshot is not pinned to the snapshot's node (the provisioner then fails it on another node).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from localcsi.extender.cache import (
    LOGICAL_VOLUMES,
    NODE_LOCAL_STORAGES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    object_key,
)
from localcsi.extender.service import ClaimFetcher, ClaimFetchError, Extender
from localcsi.k8s.errors import KubeError, NotFound
from localcsi.k8s.informer import Informer, ListFn, WatchFn, builtin_source, custom_source
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources, Kind, Object
from localcsi.k8s.rest import KubeApi, resource_path
from localcsi.logs import fields

log = logging.getLogger(__name__)

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
VOLUME_SNAPSHOT = Kind("volumesnapshots", "VolumeSnapshot", SNAPSHOT_GROUP, "v1", namespaced=True)
VOLUME_SNAPSHOT_CONTENT = Kind("volumesnapshotcontents", "VolumeSnapshotContent", SNAPSHOT_GROUP, "v1")


@dataclass(frozen=True)
class Watched:
    kind: str
    informer: Informer


def _optional(api: KubeApi, kind: Kind) -> tuple[ListFn, WatchFn] | None:
    resources = CustomResources(api, kind)
    try:
        resources.list()
    except KubeError as error:
        log.warning(
            "not watching %s: %s", kind.plural, error.message, extra=fields(kind=kind.plural, status=error.status)
        )
        return None
    return custom_source(resources)


def claim_fetcher(api: KubeApi) -> ClaimFetcher:
    """A live read of one PVC for filter (see Extender._read_unseen_claims), as the informer's raw JSON."""

    def fetch(namespace: str, name: str) -> Object | None:
        try:
            path = resource_path("", "v1", "persistentvolumeclaims", name, namespace=namespace)
        except ValueError:  # no claim can have that name
            return None
        try:
            return api.get(path)
        except NotFound:
            return None
        except KubeError as error:
            raise ClaimFetchError(error.message) from None

    return fetch


def _handler(extender: Extender, kind: str) -> Callable[[str, Object], None]:
    def handle(event_type: str, obj: Object) -> None:
        extender.apply(kind, event_type, obj)

    return handle


def start_informers(api: KubeApi, extender: Extender, should_exit: Callable[[], bool]) -> list[Watched]:
    sources: dict[str, tuple[ListFn, WatchFn] | None] = {
        NODE_LOCAL_STORAGES: custom_source(CustomResources(api, NODE_LOCAL_STORAGE)),
        PERSISTENT_VOLUMES: builtin_source(api, "persistentvolumes"),
        PERSISTENT_VOLUME_CLAIMS: builtin_source(api, "persistentvolumeclaims"),
        PODS: builtin_source(api, "pods"),
        STORAGE_CLASSES: builtin_source(api, "storageclasses"),
        LOGICAL_VOLUMES: _optional(api, LOGICAL_VOLUME),
    }
    snapshots = _optional(api, VOLUME_SNAPSHOT)
    contents = _optional(api, VOLUME_SNAPSHOT_CONTENT) if snapshots else None
    if snapshots and contents:
        sources[VOLUME_SNAPSHOTS] = snapshots
        sources[VOLUME_SNAPSHOT_CONTENTS] = contents
        extender.view.snapshots_watched = True
    watched: list[Watched] = []
    for kind, source in sources.items():
        if source is None:
            continue
        informer = Informer(*source, key=object_key)
        informer.add_handler(_handler(extender, kind))
        informer.start(should_exit, name=f"informer-{kind}")
        watched.append(Watched(kind, informer))
    return watched


def all_synced(watched: list[Watched]) -> bool:
    return all(w.informer.wait_synced(0) for w in watched)


def resync(extender: Extender, watched: list[Watched]) -> int:
    """Converge the view to the informers' caches; returns how many objects were out of step."""
    corrected = 0
    for w in watched:
        changes = extender.resync(w.kind, w.informer.cache)
        if changes:
            log.warning("view was out of step with the informer; corrected", extra=fields(kind=w.kind, objects=changes))
        corrected += changes
    return corrected
