"""What the cluster backend reads from and waits on: the apiserver's resources and a watched cache.

A wait watches the cache (an Informer: list+watch in a daemon thread) and also asks the apiserver
every ``recheck`` seconds, so a late or lost watch event costs seconds, not the whole deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from localcsi.driver.cluster_resources import Resource
from localcsi.k8s.informer import Informer
from localcsi.k8s.resources import WatchEvent
from localcsi.resources import logicalvolume as llv


class ResourceApi(Protocol):
    """What the backend uses of ``localcsi.k8s.resources.CustomResources``."""

    def get(self, name: str) -> Resource | None: ...
    def list(self, label_selector: str | None = None) -> tuple[list[Resource], str]: ...
    def create(self, body: Mapping[str, Any]) -> Resource: ...
    def patch(self, name: str, merge_patch: Resource) -> Resource: ...
    def delete(self, name: str) -> bool: ...
    def watch(
        self, resource_version: str, timeout_seconds: int, label_selector: str | None = None
    ) -> Iterator[WatchEvent]: ...


class View(Protocol):
    """A cache of one kind that can be waited on for its next change."""

    def get(self, name: str) -> Resource | None: ...
    def items(self) -> list[Resource]: ...
    def version(self) -> int: ...
    def wait_change(self, seen: int, timeout: float) -> None: ...


class InformerView:
    """A ``View`` kept current by an Informer (list+watch) in a daemon thread."""

    def __init__(self, api: ResourceApi, label_selector: str | None = None) -> None:
        self.informer = Informer(
            lambda: api.list(label_selector),
            lambda version, seconds: api.watch(version, seconds, label_selector),
        )
        self.informer.add_handler(self._changed)
        self._changes = threading.Condition()
        self._version = 0

    def _changed(self, _event: str, _obj: Resource) -> None:
        with self._changes:
            self._version += 1
            self._changes.notify_all()

    def start(self, should_exit: Callable[[], bool], name: str) -> None:
        self.informer.start(should_exit, name=name)

    def wait_synced(self, timeout: float) -> bool:
        return self.informer.wait_synced(timeout)

    def get(self, name: str) -> Resource | None:
        return self.informer.get(name)

    def items(self) -> list[Resource]:
        return list(self.informer.cache().values())

    def version(self) -> int:
        with self._changes:
            return self._version

    def wait_change(self, seen: int, timeout: float) -> None:
        with self._changes:
            self._changes.wait_for(lambda: self._version != seen, timeout=max(0.0, timeout))


Done = Callable[[Resource | None, bool], bool]


class Same:
    """Tells when the resource with ``uid`` is gone: the apiserver no longer has it, or the cache had
    it and no longer does (a cache that never had it may just be behind)."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.cached = False

    def gone(self, current: Resource | None, fresh: bool) -> bool:
        if current is not None and llv.uid(current) == self.uid:
            self.cached = self.cached or not fresh
            return False
        return fresh or self.cached


class TimedOut(Exception):
    def __init__(self, last: Resource | None) -> None:
        super().__init__("timed out")
        self.last = last


def wait_for(
    api: ResourceApi,
    view: View,
    name: str,
    done: Done,
    deadline: float,
    *,
    recheck: float,
    clock: Callable[[], float] = time.monotonic,
) -> Resource | None:
    """The resource once ``done`` holds for it; TimedOut with the last state seen at the deadline.

    ``done`` is told whether the state is fresh from the apiserver: the cache may not have a new
    resource yet.
    """
    checked = clock()
    while True:
        seen = view.version()
        obj = view.get(name)
        if done(obj, False):
            return obj
        now = clock()
        if now - checked >= recheck or now >= deadline:
            obj, checked = api.get(name), now
            if done(obj, True):
                return obj
            if now >= deadline:
                raise TimedOut(obj)
        view.wait_change(seen, min(deadline, checked + recheck) - now)
