"""The extender's view of the cluster, fed by informer events and turned into core inputs.

Every object is reduced on arrival to what scheduling needs: a node's report, or the usages a source (a
PV, a PVC, a LogicalVolume, a scheduled pod's inline volumes) puts on one node. A node's capacity is
computed from those when first asked, patched when one of its volumes changes where that is exact, and
computed again otherwise, so a filter request costs a dictionary lookup per node. The view is a pure
function of the objects it holds: ``replace_all`` (run periodically from the informers' caches)
converges it again after any missed event, which is how open-local's extender drifted (#262, #269).

Not thread-safe: the extender holds one lock around the view and the reservation ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from localcsi.core.capacity_table import CapacityTable
from localcsi.core.errors import CoreError
from localcsi.core.ids import parse_snapshot_id
from localcsi.core.scheduling import NodeCapacity, NodeReport, Usage, node_capacity, with_usage_changed
from localcsi.core.sizes import DEFAULT_VOLUME_BYTES
from localcsi.extender.node_usages import NodeUsages
from localcsi.extender.objects import (
    Object,
    class_params,
    inline_usages,
    is_mapping,
    is_ours,
    meta,
    node_of_report,
    pending_usage,
    report_from_nls,
    section,
    selected_node,
    usage_from_logical_volume,
    usage_from_pv,
)
from localcsi.logs import fields

log = logging.getLogger(__name__)

NODE_LOCAL_STORAGES: Final = "nodelocalstorages"
LOGICAL_VOLUMES: Final = "logicalvolumes"
PERSISTENT_VOLUMES: Final = "persistentvolumes"
PERSISTENT_VOLUME_CLAIMS: Final = "persistentvolumeclaims"
PODS: Final = "pods"
STORAGE_CLASSES: Final = "storageclasses"
VOLUME_SNAPSHOTS: Final = "volumesnapshots"
VOLUME_SNAPSHOT_CONTENTS: Final = "volumesnapshotcontents"
KINDS: Final = (
    NODE_LOCAL_STORAGES,
    LOGICAL_VOLUMES,
    PERSISTENT_VOLUMES,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    STORAGE_CLASSES,
    VOLUME_SNAPSHOTS,
    VOLUME_SNAPSHOT_CONTENTS,
)
DELETED: Final = "DELETED"
_FINISHED_PHASES = ("Succeeded", "Failed")


def object_key(obj: Mapping[str, Any]) -> str:
    metadata = meta(obj)
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name', '')}" if namespace else str(metadata.get("name", ""))


def slim_pod(pod: Mapping[str, Any]) -> Object:
    """What the view keeps of a pod: identity, node, phase and its CSI inline volumes."""
    metadata = meta(pod)
    spec = section(pod, "spec")
    volumes = [v for v in spec.get("volumes") or [] if is_mapping(v) and "csi" in v]
    return {
        "metadata": {key: metadata.get(key) for key in ("name", "namespace", "uid")},
        "spec": {"nodeName": spec.get("nodeName"), "volumes": volumes},
        "status": {"phase": section(pod, "status").get("phase")},
    }


class ClusterView:
    """Implements ``demand.ClusterLookup`` and answers ``capacity(node)``.

    Callbacks tell the reservation ledger what the cluster committed: ``on_commit(key, node)`` when a
    volume first appears on a node, ``on_pod_done(uid)`` when a pod is scheduled or gone,
    ``on_node_gone(node)`` when a node's report disappears.
    """

    def __init__(
        self,
        on_commit: Callable[[str, str], None] = lambda key, node: None,
        on_pod_done: Callable[[str], None] = lambda uid: None,
        on_node_gone: Callable[[str], None] = lambda node: None,
        default_bytes: int = DEFAULT_VOLUME_BYTES,
    ) -> None:
        self._on_commit = on_commit
        self._on_pod_done = on_pod_done
        self._on_node_gone = on_node_gone
        self._default_bytes = default_bytes
        self._objects: dict[str, dict[str, Object]] = {kind: {} for kind in KINDS}
        self._reports: dict[str, NodeReport] = {}
        self._sources: dict[str, tuple[str, tuple[Usage, ...]]] = {}
        self._usages = NodeUsages()
        self._capacity: dict[str, NodeCapacity] = {}
        self._stale: set[str] = set()  # nodes whose capacity must be recomputed
        self._table = CapacityTable()
        self._pvcs_by_class: dict[str, set[str]] = {}
        self.snapshots_watched = False

    # -- ClusterLookup -------------------------------------------------------------------------------

    def pvc(self, namespace: str, name: str) -> Object | None:
        return self._objects[PERSISTENT_VOLUME_CLAIMS].get(f"{namespace}/{name}")

    def pv(self, name: str) -> Object | None:
        return self._objects[PERSISTENT_VOLUMES].get(name)

    def storage_class(self, name: str) -> Object | None:
        return self._objects[STORAGE_CLASSES].get(name)

    def snapshot_node(self, namespace: str, name: str) -> str | None:
        if not self.snapshots_watched:
            return None
        snapshot = self._objects[VOLUME_SNAPSHOTS].get(f"{namespace}/{name}")
        content_name = section(snapshot, "status").get("boundVolumeSnapshotContentName") if snapshot else None
        content = self._objects[VOLUME_SNAPSHOT_CONTENTS].get(str(content_name)) if content_name else None
        handle = section(content, "status").get("snapshotHandle") if content else None
        try:
            return parse_snapshot_id(str(handle)).node if handle else ""
        except CoreError:
            return ""

    # -- capacity ------------------------------------------------------------------------------------

    def capacity(self, node: str) -> NodeCapacity | None:
        """The node's room without reservations; None when its agent has not reported."""
        return self.capacity_table().get(node)

    def capacity_table(self) -> Mapping[str, NodeCapacity]:
        """Every reported node's room, recomputed only for nodes something changed on since the last
        call; filter and prioritize look nodes up in it directly."""
        if self._stale:
            for node in self._stale:
                report = self._reports.get(node)
                if report is None:
                    self._capacity.pop(node, None)
                    self._table.drop(node)
                else:
                    self._capacity[node] = cap = node_capacity(report, self.usages(node))
                    self._table.set(cap)
            self._stale.clear()
        return self._capacity

    def table(self) -> CapacityTable:
        """``capacity_table`` as arrays (see ``core.capacity_table``)."""
        self.capacity_table()
        return self._table

    def nodes(self) -> list[str]:
        return sorted(self._reports)

    def usages(self, node: str) -> list[Usage]:
        return self._usages.usages(node)

    # -- events ------------------------------------------------------------------------------------------

    def apply(self, kind: str, event_type: str, obj: Object) -> None:
        """One informer event (ADDED, MODIFIED or DELETED) for ``kind`` (a plural from KINDS)."""
        if kind == PODS:
            obj = slim_pod(obj)
        key = object_key(obj)
        store = self._objects[kind]
        previous = store.get(key)
        if event_type == DELETED:
            previous = store.pop(key, None) or obj  # gone either way, even if never seen
        else:
            store[key] = obj
        current = store.get(key)
        getattr(self, f"_apply_{kind}")(key, previous, current)

    def replace_all(self, kind: str, objects: Mapping[str, Object]) -> int:
        """Converge ``kind`` to exactly ``objects`` (keyed like ``object_key``); returns changes made."""
        store = self._objects[kind]
        slim = slim_pod if kind == PODS else dict
        fresh = {object_key(obj): slim(obj) for obj in objects.values()}
        gone = [obj for key, obj in store.items() if key not in fresh]
        changed = [obj for key, obj in fresh.items() if store.get(key) != obj]
        for obj in gone:
            self.apply(kind, DELETED, obj)
        for obj in changed:
            self.apply(kind, "MODIFIED", obj)
        return len(gone) + len(changed)

    def _apply_nodelocalstorages(self, key: str, previous: Object | None, current: Object | None) -> None:
        node = node_of_report(current or previous or {})
        if current is None:
            if self._reports.pop(node, None) is not None:
                self._on_node_gone(node)
        else:
            self._reports[node] = report_from_nls(current)
        self._stale.add(node)

    def _apply_logicalvolumes(self, key: str, previous: Object | None, current: Object | None) -> None:
        found = usage_from_logical_volume(current) if current else None
        self._set_source(f"llv/{key}", found[0] if found else None, (found[1],) if found else ())

    def _apply_persistentvolumes(self, key: str, previous: Object | None, current: Object | None) -> None:
        found = usage_from_pv(current) if current else None
        self._set_source(f"pv/{key}", found[0] if found else None, (found[1],) if found else ())
        for obj in (previous, current):
            claim = section(section(obj, "spec"), "claimRef") if obj else {}
            if claim.get("name"):
                self._refresh_pvc(f"{claim.get('namespace', '')}/{claim['name']}")

    def _apply_persistentvolumeclaims(self, key: str, previous: Object | None, current: Object | None) -> None:
        for obj, add in ((previous, False), (current, True)):
            class_name = section(obj, "spec").get("storageClassName") if obj else None
            if class_name:
                members = self._pvcs_by_class.setdefault(str(class_name), set())
                if add:
                    members.add(key)
                else:
                    members.discard(key)
        self._refresh_pvc(key)

    def _apply_storageclasses(self, key: str, previous: Object | None, current: Object | None) -> None:
        for pvc_key in sorted(self._pvcs_by_class.get(key, ())):
            self._refresh_pvc(pvc_key)

    def _apply_pods(self, key: str, previous: Object | None, current: Object | None) -> None:
        pod = current or previous or {}
        uid = str(meta(pod).get("uid") or "")
        node = str(section(current, "spec").get("nodeName") or "") if current else ""
        running = current is not None and section(current, "status").get("phase") not in _FINISHED_PHASES
        usages = inline_usages(current, self._default_bytes) if current is not None and node and running else []
        self._set_source(f"pod/{uid}", node or None, tuple(usages))
        if current is None or node:
            self._on_pod_done(uid)

    def _apply_volumesnapshots(self, key: str, previous: Object | None, current: Object | None) -> None:
        pass  # read on demand by snapshot_node

    def _apply_volumesnapshotcontents(self, key: str, previous: Object | None, current: Object | None) -> None:
        pass

    def _refresh_pvc(self, key: str) -> None:
        """A PVC is pending on a node from selected-node until its PV is in the cache."""
        pvc = self._objects[PERSISTENT_VOLUME_CLAIMS].get(key)
        node = selected_node(pvc) if pvc else None
        usage: Usage | None = None
        if pvc is not None and node is not None:
            spec = section(pvc, "spec")
            volume_name = spec.get("volumeName")
            storage_class = self.storage_class(str(spec.get("storageClassName") or ""))
            if storage_class is not None and is_ours(storage_class) and not (volume_name and self.pv(str(volume_name))):
                try:
                    usage = pending_usage(pvc, class_params(storage_class), node, self._default_bytes)
                except CoreError as error:
                    log.warning("PVC %s: StorageClass invalid: %s", key, error.message, extra=fields(pvc=key))
        self._set_source(f"pvc/{key}", node if usage else None, (usage,) if usage else ())

    def _set_source(self, source: str, node: str | None, usages: tuple[Usage, ...]) -> None:
        old = self._sources.pop(source, None)
        new = (node, usages) if node is not None and usages else None
        if old is not None and old == new:
            self._sources[source] = old
            return
        if new is not None:
            self._sources[source] = new
        for changed_node, before, after in self._usages.replace(source, old, new):
            self._count_change(changed_node, before, after)
        if new is None:
            return
        old_keys = {u.key for u in old[1]} if old is not None and old[0] == node else set()
        for usage in usages:
            if usage.key not in old_keys:
                self._on_commit(usage.key, new[0])

    def _count_change(self, node: str, before: Usage | None, after: Usage | None) -> None:
        """One volume counts differently on ``node``: its capacity patched where that is exact, else
        recomputed from all its volumes at the next ``capacity_table``."""
        cap = self._capacity.get(node)
        report = self._reports.get(node)
        if node in self._stale or cap is None or report is None:
            self._stale.add(node)
            return
        patched = with_usage_changed(cap, report, before, after)
        if patched is None:
            self._stale.add(node)
        elif patched is not cap:
            self._capacity[node] = patched
            self._table.set(patched)
