"""List and watch one kind into a local cache, the way a client-go informer does.

A watch that ends, cleanly (the server's timeout) or with an error, is opened again after a jittered,
exponentially growing pause (``Backoff``), so an apiserver that drops watches at once is not hammered;
a watch that stayed open for HEALTHY_SECONDS resets the pause. Errors and an expired resource version
(410 Gone) lead to a relist, which reports what changed since the cache was last current: ADDED for a
new object, MODIFIED for a new resourceVersion, DELETED for one gone, nothing for one unchanged. Every
pause ends at once when shutdown is requested.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import urllib3

from localcsi.k8s.errors import Gone, KubeError
from localcsi.k8s.resources import CustomResources
from localcsi.k8s.rest import KubeApi, Object, WatchEvent, resource_path
from localcsi.lifecycle import stop_sleeper

log = logging.getLogger(__name__)

ListFn = Callable[[], tuple[list[Object], str]]
WatchFn = Callable[[str, int], Iterator[WatchEvent]]
Handler = Callable[[str, Object], None]

WATCH_SECONDS = 300
HEALTHY_SECONDS = 30.0  # a watch open this long resets the backoff
# client-go's reflector backs off from 800 ms up to 30 s.
FIRST_BACKOFF_SECONDS = 0.8
MAX_BACKOFF_SECONDS = 30.0


def object_key(obj: Object) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _resource_version(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion") or "")


def _changed(old: Object, new: Object) -> bool:
    """As client-go: a new resourceVersion is a change; without versions, compare the objects."""
    old_version, new_version = _resource_version(old), _resource_version(new)
    if old_version and new_version:
        return old_version != new_version
    return old != new


@dataclass
class Backoff:
    """Pauses between attempts: the n-th in a row is between half and all of ``first * 2**(n-1)``,
    never more than ``maximum`` (equal jitter: replicas restarted together spread out)."""

    first: float = FIRST_BACKOFF_SECONDS
    maximum: float = MAX_BACKOFF_SECONDS
    draw: Callable[[], float] = random.random  # uniform in [0, 1)
    attempts: int = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.first * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return ceiling / 2 * (1 + self.draw())

    def reset(self) -> None:
        self.attempts = 0


class Informer:
    """A cache of one kind kept current by list+watch; handlers run on the informer's thread."""

    def __init__(
        self,
        list_fn: ListFn,
        watch_fn: WatchFn,
        key: Callable[[Object], str] = object_key,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list = list_fn
        self._watch = watch_fn
        self._key = key
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._cache: dict[str, Object] = {}
        self._lock = threading.Lock()
        self._handlers: list[Handler] = []
        self._synced = threading.Event()

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def cache(self) -> dict[str, Object]:
        with self._lock:
            return dict(self._cache)

    def get(self, key: str) -> Object | None:
        with self._lock:
            return self._cache.get(key)

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def start(self, should_exit: Callable[[], bool], name: str = "informer") -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(should_exit,), name=name, daemon=True)
        thread.start()
        return thread

    def run(self, should_exit: Callable[[], bool]) -> None:
        """List, then watch from the list's version, until ``should_exit()``; pass an Event's ``is_set``
        so that a pause between attempts ends the moment the Event is set."""
        sleep = stop_sleeper(should_exit)
        resource_version = ""
        while not should_exit():
            opened = self._clock()
            try:
                if not resource_version:
                    resource_version = self._relist()
                    opened = self._clock()
                resource_version = self._follow(resource_version, should_exit)
            except Gone:
                resource_version = ""
            except (KubeError, OSError, ValueError, urllib3.exceptions.HTTPError) as error:
                # apiserver restarts and network blips (urllib3 wraps a refused connection in its own
                # MaxRetryError): one line each, where a traceback per retry buried CI's failures
                log.warning("informer: %s; retrying", error)
                resource_version = ""
            except Exception:
                log.exception("informer: unexpected error; retrying")
                resource_version = ""
            if self._clock() - opened >= HEALTHY_SECONDS:
                self._backoff.reset()
            sleep(self._backoff.next())

    def _relist(self) -> str:
        items, resource_version = self._list()
        fresh = {self._key(item): item for item in items}
        with self._lock:
            old = self._cache
            self._cache = fresh
        events = [("DELETED", obj) for key, obj in old.items() if key not in fresh]
        for key, obj in fresh.items():
            if key not in old:
                events.append(("ADDED", obj))
            elif _changed(old[key], obj):
                events.append(("MODIFIED", obj))
        for event_type, obj in events:
            self._notify(event_type, obj)
        self._synced.set()
        return resource_version

    def _follow(self, resource_version: str, should_exit: Callable[[], bool]) -> str:
        for event in self._watch(resource_version, WATCH_SECONDS):
            obj = event.object
            resource_version = str(obj.get("metadata", {}).get("resourceVersion") or resource_version)
            if event.type == "BOOKMARK":
                continue
            key = self._key(obj)
            with self._lock:
                if event.type == "DELETED":
                    self._cache.pop(key, None)
                else:
                    self._cache[key] = obj
            self._notify(event.type, obj)
            if should_exit():
                break
        return resource_version

    def _notify(self, event_type: str, obj: Object) -> None:
        for handler in self._handlers:
            try:
                handler(event_type, obj)
            except Exception:
                log.exception("informer handler failed on %s %s", event_type, self._key(obj))


# plural -> (API group, version): what builtin_source lists and watches across the cluster
_BUILTIN: dict[str, tuple[str, str]] = {
    "pods": ("", "v1"),
    "persistentvolumeclaims": ("", "v1"),
    "persistentvolumes": ("", "v1"),
    "nodes": ("", "v1"),
    "storageclasses": ("storage.k8s.io", "v1"),
    "csistoragecapacities": ("storage.k8s.io", "v1"),
    "leases": ("coordination.k8s.io", "v1"),
}


def builtin_source(api: KubeApi, plural: str, label_selector: str | None = None) -> tuple[ListFn, WatchFn]:
    """list and watch functions over a built-in kind, cluster-wide, returning raw dicts (the apiserver's JSON keys)."""
    group, version = _BUILTIN[plural]
    path = resource_path(group, version, plural)
    query = {"labelSelector": label_selector}

    def list_fn() -> tuple[list[Object], str]:
        return api.list(path, query)

    def watch_fn(resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        return api.watch(path, resource_version, timeout_seconds, query)

    return list_fn, watch_fn


def custom_source(
    resources: CustomResources, label_selector: str | None = None, field_selector: str | None = None
) -> tuple[ListFn, WatchFn]:
    def list_fn() -> tuple[list[Object], str]:
        return resources.list(label_selector, field_selector)

    def watch_fn(resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        return resources.watch(resource_version, timeout_seconds, label_selector, field_selector)

    return list_fn, watch_fn
