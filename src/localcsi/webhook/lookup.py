"""What the webhook reads from the apiserver: StorageClasses from an informer (few, read for every pod
with a volume), a pod's PVCs by GET (fresh, and no cluster-wide cache of every PVC in memory).

A StorageClass missing from the cache is read by GET before it counts as absent: a class created a
moment before the pod may not have reached the watch yet. RBAC: get, list, watch on storageclasses; get
on persistentvolumeclaims.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import urllib3

from localcsi.k8s.errors import KubeError, NotFound
from localcsi.k8s.informer import Informer, builtin_source
from localcsi.k8s.rest import KubeApi, resource_path
from localcsi.webhook.usage import LookupFailed, choose_default_class

READ_TIMEOUT_SECONDS = 2.0  # well inside the webhook's timeoutSeconds (5)


class KubeLookup:
    def __init__(self, api: KubeApi, timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self._api = api
        self._timeout = timeout
        self.classes = Informer(*builtin_source(api, "storageclasses"))

    def start(self, should_exit: Callable[[], bool]) -> None:
        self.classes.start(should_exit, name="informer-storageclasses")

    def synced(self) -> bool:
        return self.classes.wait_synced(0)

    def _read(self, group: str, plural: str, name: str, namespace: str | None = None) -> Mapping[str, Any] | None:
        try:
            path = resource_path(group, "v1", plural, name, namespace=namespace)
        except ValueError:  # the pod names something no object can be called (it is not validated yet)
            return None
        try:
            return self._api.get(path, timeout=self._timeout)
        except NotFound:
            return None
        except KubeError as error:
            raise LookupFailed(f"{error.status} {error.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise LookupFailed(str(error) or type(error).__name__) from None

    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._read("", "persistentvolumeclaims", name, namespace)

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        cached = self.classes.get(name)
        return cached if cached is not None else self._read("storage.k8s.io", "storageclasses", name)

    def default_class(self) -> Mapping[str, Any] | None:
        return choose_default_class(self.classes.cache().values())
