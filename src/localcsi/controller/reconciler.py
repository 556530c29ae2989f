"""One NodeLocalStorage per Node, written from the selected NodeLocalStorageInitConfig.

``plan`` is pure: from the informers' caches it decides which NodeLocalStorages to create, update and
delete. ``Reconciler.reconcile`` carries the plan out, checking before every write that this replica
still leads, and then writes each init config's status (``nodes`` and conditions).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from localcsi import API_GROUP, API_VERSION
from localcsi.core.initconfig import contains, invalid_entries, node_spec, spec_digest
from localcsi.k8s.errors import AlreadyExists, Conflict, KubeError, NotFound
from localcsi.logs import fields

log = logging.getLogger(__name__)

Object = dict[str, Any]
StillLeading = Callable[[], bool]

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "localcsi-controller"
INIT_CONFIG_LABEL: Final = f"{API_GROUP}/init-config"
DEFAULT_INIT_CONFIG: Final = "localcsi"
READY: Final = "Ready"
SELECTORS_VALID: Final = "SelectorsValid"


class Resources(Protocol):
    """The part of localcsi.k8s.resources.CustomResources the reconciler uses."""

    def create(self, body: Object) -> Object: ...

    def replace(self, body: Object) -> Object: ...

    def delete(self, name: str) -> bool: ...

    def patch_status(self, name: str, status: Object) -> Object: ...


class Recorder(Protocol):
    def record(self, involved: Object, event_type: str, reason: str, message: str) -> None: ...


# Desired spec digest -> digest of the spec the apiserver stored for it (after defaults and pruning).
Written = Mapping[str, tuple[str, str]]


@dataclass
class Plan:
    create: list[Object] = field(default_factory=list)
    update: list[Object] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    desired: dict[str, Object] = field(default_factory=dict)  # node name -> desired spec
    invalid: dict[int, str] = field(default_factory=dict)  # nodesConfig index -> problem


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def is_managed(storage: Mapping[str, Any]) -> bool:
    return (_meta(storage).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


def node_owner(node: Mapping[str, Any]) -> Object:
    """An ownerReference to the Node, so the garbage collector removes the NodeLocalStorage with it."""
    meta = _meta(node)
    owner: Object = {"apiVersion": "v1", "kind": "Node", "name": meta["name"]}
    if meta.get("uid"):
        owner["uid"] = meta["uid"]
    return owner


def _owners_with(current: list[Object], owner: Object) -> list[Object]:
    others = [ref for ref in current if not (ref.get("kind") == "Node" and ref.get("apiVersion") == "v1")]
    return [*others, owner]


def _desired_metadata(stored: Mapping[str, Any] | None, node: Mapping[str, Any], config_name: str) -> Object:
    meta: Object = copy.deepcopy(dict(_meta(stored))) if stored is not None else {"name": _meta(node)["name"]}
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY, INIT_CONFIG_LABEL: config_name}
    meta["ownerReferences"] = _owners_with(list(meta.get("ownerReferences") or []), node_owner(node))
    return meta


def _metadata_in_sync(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return contains(_meta(stored).get("labels") or {}, desired["labels"]) and contains(
        _meta(stored).get("ownerReferences") or [], desired["ownerReferences"]
    )


def spec_in_sync(stored: Mapping[str, Any], desired_spec: Object, written: Written) -> bool:
    """The stored spec says what we want: it holds every field we set (the apiserver may add defaults), or
    it is exactly what the apiserver made of our last write of this same desired spec."""
    stored_spec = stored.get("spec") or {}
    if contains(stored_spec, desired_spec):
        return True
    name = str(_meta(stored).get("name"))
    return written.get(name) == (spec_digest(desired_spec), spec_digest(stored_spec))


def plan(
    nodes: Mapping[str, Object],
    config: Mapping[str, Any] | None,
    storages: Mapping[str, Object],
    written: Written,
    config_name: str = DEFAULT_INIT_CONFIG,
) -> Plan:
    """What to change so that every Node has a NodeLocalStorage written from ``config`` and no managed one
    outlives its Node. Without a config nothing is created or updated; cleanup still happens."""
    result = Plan()
    for name, storage in storages.items():
        if name not in nodes and is_managed(storage) and not _meta(storage).get("deletionTimestamp"):
            result.delete.append(name)
    if config is None:
        return result
    init_spec = config.get("spec") or {}
    result.invalid = invalid_entries(init_spec)
    for name, node in sorted(nodes.items()):
        labels = _meta(node).get("labels") or {}
        desired_spec = node_spec(init_spec, name, labels).spec
        result.desired[name] = desired_spec
        stored = storages.get(name)
        if stored is None:
            result.create.append({"metadata": _desired_metadata(None, node, config_name), "spec": desired_spec})
            continue
        metadata = _desired_metadata(stored, node, config_name)
        if not (spec_in_sync(stored, desired_spec, written) and _metadata_in_sync(stored, metadata)):
            body: Object = {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "NodeLocalStorage",
                "metadata": metadata,
                "spec": desired_spec,
            }
            result.update.append(body)
    return result


@dataclass(frozen=True)
class SyncResult:
    """How a reconcile went, for the selected init config's status."""

    synced: int
    total: int
    failures: tuple[str, ...] = ()
    invalid: Mapping[int, str] = field(default_factory=dict)


def condition(
    type_: str, ok: bool, reason: str, message: str, *, generation: int, previous: Mapping[str, Any] | None, now: str
) -> Object:
    """A metav1.Condition; lastTransitionTime moves only when the status does."""
    status = "True" if ok else "False"
    unchanged = previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else now,
    }


def _previous_conditions(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conditions = (config.get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in conditions if isinstance(c, Mapping)}


def selected_status(config: Mapping[str, Any], result: SyncResult, now: str) -> Object:
    previous = _previous_conditions(config)
    generation = int(_meta(config).get("generation") or 0)

    def make(type_: str, ok: bool, reason: str, message: str) -> Object:
        return condition(type_, ok, reason, message, generation=generation, previous=previous.get(type_), now=now)

    if result.failures:
        ready = make(READY, False, "SyncFailed", "; ".join(result.failures)[:2000])
    else:
        message = f"{result.synced} of {result.total} nodes have their NodeLocalStorage written from this config"
        ready = make(READY, True, "Synced", message)
    if result.invalid:
        problems = "; ".join(f"nodesConfig[{index}]: {problem}" for index, problem in sorted(result.invalid.items()))
        selectors = make(SELECTORS_VALID, False, "InvalidSelector", f"these entries match no node: {problems}")
    else:
        selectors = make(SELECTORS_VALID, True, "Valid", "every selector is valid")
    return {"nodes": result.synced, "conditions": [ready, selectors]}


def ignored_status(config: Mapping[str, Any], config_name: str, now: str) -> Object:
    previous = _previous_conditions(config).get(READY)
    generation = int(_meta(config).get("generation") or 0)
    message = (
        f"the controller uses the NodeLocalStorageInitConfig named {config_name!r} (its --init-config flag); "
        "this one is ignored"
    )
    ready = condition(READY, False, "NotSelected", message, generation=generation, previous=previous, now=now)
    return {"nodes": 0, "conditions": [ready]}


def _status_changed(stored: Mapping[str, Any] | None, new: Object) -> bool:
    return not contains(stored or {}, new)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PAST: Final = {"create": "created", "update": "updated", "delete": "deleted"}


@dataclass
class Outcome:
    writes: int = 0
    errors: int = 0  # writes the apiserver refused (lost races are only a retry)
    retry: bool = False  # something failed in a way worth retrying soon (lost race, apiserver blip)
    stopped: bool = False  # leadership ended part way through


class Reconciler:
    def __init__(
        self,
        storages: Resources,
        configs: Resources,
        config_name: str = DEFAULT_INIT_CONFIG,
        recorder: Recorder | None = None,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self._storages = storages
        self._configs = configs
        self.config_name = config_name
        self._recorder = recorder
        self._now = now
        self._written: dict[str, tuple[str, str]] = {}

    def reconcile(
        self,
        nodes: Mapping[str, Object],
        configs: Mapping[str, Object],
        storages: Mapping[str, Object],
        still_leading: StillLeading,
    ) -> Outcome:
        """Carry out the plan for these cache snapshots; every write is preceded by ``still_leading()``."""
        config = configs.get(self.config_name)
        todo = plan(nodes, config, storages, self._written, self.config_name)
        steps: list[tuple[str, str, Object | None]] = [("delete", name, None) for name in todo.delete]
        steps += [("create", body["metadata"]["name"], body) for body in todo.create]
        steps += [("update", body["metadata"]["name"], body) for body in todo.update]
        outcome = Outcome()
        failures: dict[str, str] = {}
        for action, name, body in steps:
            if not still_leading():
                outcome.stopped = True
                return outcome
            try:
                self._apply(action, name, body)
            except (Conflict, AlreadyExists, NotFound) as error:
                log.info("NodeLocalStorage %s changed meanwhile (%s); retrying", name, error.reason)
                outcome.retry = True
            except (KubeError, OSError) as error:
                log.warning("could not %s NodeLocalStorage %s: %s", action, name, error, extra=fields(node=name))
                failures[name] = f"{action} NodeLocalStorage {name}: {error}"
                outcome.errors += 1
                outcome.retry = True
            else:
                outcome.writes += 1
                log.info("%s NodeLocalStorage %s", _PAST[action], name, extra=fields(node=name, action=action))
        result = SyncResult(
            synced=len([name for name in todo.desired if name not in failures]),
            total=len(todo.desired),
            failures=tuple(failures.values()),
            invalid=todo.invalid,
        )
        if not self._write_statuses(configs, config, result, still_leading):
            outcome.stopped = True
        return outcome

    def _apply(self, action: str, name: str, body: Object | None) -> None:
        if body is None:
            self._storages.delete(name)
            self._written.pop(name, None)
            return
        stored = (self._storages.create if action == "create" else self._storages.replace)(body)
        self._written[name] = (spec_digest(body["spec"]), spec_digest(stored.get("spec") or {}))

    def _write_statuses(
        self,
        configs: Mapping[str, Object],
        selected: Mapping[str, Any] | None,
        result: SyncResult,
        still_leading: StillLeading,
    ) -> bool:
        now = self._now()
        for name, config in sorted(configs.items()):
            if config is selected:
                status = selected_status(config, result, now)
            else:
                status = ignored_status(config, self.config_name, now)
            if not _status_changed(config.get("status"), status):
                continue
            if not still_leading():
                return False
            try:
                self._configs.patch_status(name, status)
            except (KubeError, OSError) as error:
                log.warning("could not write the status of init config %s: %s", name, error)
                continue
            self._maybe_record(config, status)
        return True

    def _maybe_record(self, config: Mapping[str, Any], status: Object) -> None:
        if self._recorder is None:
            return
        before = _previous_conditions(config)
        for item in status["conditions"]:
            old = before.get(item["type"])
            if item["status"] == "False" and (old is None or old.get("status") != "False"):
                involved = {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": "NodeLocalStorageInitConfig",
                    "metadata": dict(_meta(config)),
                }
                self._recorder.record(involved, "Warning", item["reason"], item["message"])
