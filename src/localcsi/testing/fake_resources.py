"""An in-memory stand-in for ``CustomResources`` that keeps the apiserver rules the code relies on.

Kept: uid, resourceVersion, generation (bumped by spec changes only), the status subresource (main
writes ignore status, status writes ignore the rest), JSON merge patch (null removes a key, lists are
replaced), no new version for a write that changes nothing, ``metadata.resourceVersion`` in a patch as
a precondition (409 Conflict), finalizers and deletionTimestamp (the object goes when its last
finalizer does), equality label selectors, and a watch that replays events after a resourceVersion.
``validate`` stands in for schema and CEL rules.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from localcsi.k8s.errors import AlreadyExists, Conflict, Invalid, KubeError, NotFound
from localcsi.k8s.resources import WatchEvent

Object = dict[str, Any]
Validate = Callable[[Object, Object | None], str | None]  # (new, old) -> why it is invalid


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _matches(obj: Object, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    pairs = (term.split("=", 1) for term in selector.split(","))
    return all(labels.get(key) == value for key, value in pairs)


class FakeResources:
    def __init__(self, validate: Validate | None = None) -> None:
        self.objects: dict[str, Object] = {}
        self.events: list[tuple[int, str, Object]] = []
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], KubeError] = {}  # (action, name) -> raised once
        self.validate = validate
        self._version = 0
        self._uids = 0
        self._changed = threading.Condition()
        self.closed = False

    # -- internals ---------------------------------------------------------------------------

    def _check(self, action: str, name: str) -> None:
        self.calls.append((action, name))
        error = self.fail.pop((action, name), None)
        if error is not None:
            raise error

    def _invalid(self, new: Object, old: Object | None) -> None:
        reason = self.validate(new, old) if self.validate else None
        if reason:
            raise Invalid(422, "Invalid", reason)

    def _record(self, event: str, obj: Object) -> Object:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        if event == "DELETED":
            self.objects.pop(obj["metadata"]["name"], None)
        else:
            self.objects[obj["metadata"]["name"]] = obj
        self.events.append((self._version, event, copy.deepcopy(obj)))
        self._changed.notify_all()
        return copy.deepcopy(obj)

    def _current(self, name: str) -> Object:
        obj = self.objects.get(name)
        if obj is None:
            raise NotFound(404, "NotFound", f'logicalvolumes "{name}" not found')
        return obj

    def _precondition(self, obj: Object, patch: Object) -> None:
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified; please apply your changes to the latest")

    # -- CustomResources ---------------------------------------------------------------------

    def get(self, name: str) -> Object | None:
        with self._changed:
            self._check("get", name)
            obj = self.objects.get(name)
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, label_selector: str | None = None) -> tuple[list[Object], str]:
        with self._changed:
            items = [copy.deepcopy(o) for o in self.objects.values() if _matches(o, label_selector)]
            return items, str(self._version)

    def create(self, body: Mapping[str, Any]) -> Object:
        with self._changed:
            name = body["metadata"]["name"]
            self._check("create", name)
            if name in self.objects:
                raise AlreadyExists(409, "AlreadyExists", f'logicalvolumes "{name}" already exists')
            obj = copy.deepcopy(dict(body))
            obj.pop("status", None)
            self._uids += 1
            obj["metadata"] |= {
                "uid": f"uid-{self._uids}",
                "generation": 1,
                "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self._invalid(obj, None)
            return self._record("ADDED", obj)

    def patch(self, name: str, merge: Object) -> Object:
        with self._changed:
            self._check("patch", name)
            old = self._current(name)
            self._precondition(old, merge)
            changes = {key: value for key, value in merge.items() if key != "status"}
            if "metadata" in changes:
                changes["metadata"] = {k: v for k, v in changes["metadata"].items() if k != "resourceVersion"}
            obj = merge_patch(copy.deepcopy(old), changes)
            if obj.get("spec") != old.get("spec"):
                obj["metadata"]["generation"] = old["metadata"]["generation"] + 1
            self._invalid(obj, old)
            if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
                return self._record("DELETED", obj)
            if obj == old:
                return copy.deepcopy(old)  # a no-op: no new version, no event
            return self._record("MODIFIED", obj)

    def patch_status(self, name: str, status: Object) -> Object:
        with self._changed:
            self._check("patch_status", name)
            old = self._current(name)
            obj = copy.deepcopy(old)
            obj["status"] = merge_patch(old.get("status") or {}, status)
            if obj == old:
                return copy.deepcopy(old)
            return self._record("MODIFIED", obj)

    def delete(self, name: str) -> bool:
        with self._changed:
            self._check("delete", name)
            obj = self.objects.get(name)
            if obj is None:
                return False
            obj = copy.deepcopy(obj)
            if not obj["metadata"].get("finalizers"):
                self._record("DELETED", obj)
            elif not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self._record("MODIFIED", obj)
            return True

    def watch(
        self, resource_version: str, timeout_seconds: int, label_selector: str | None = None
    ) -> Iterator[WatchEvent]:
        after = int(resource_version or 0)
        deadline = time.monotonic() + timeout_seconds
        while not self.closed:
            with self._changed:
                fresh = [e for e in self.events if e[0] > after]
                if not fresh:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._changed.wait(min(left, 0.2))
                    continue
            for version, event, obj in fresh:
                after = version
                if _matches(obj, label_selector):
                    yield WatchEvent(event, copy.deepcopy(obj))

    def close(self) -> None:
        """End every watch (informers then relist and watch again until told to stop)."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()
