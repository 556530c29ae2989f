"""What the webhook reads from the apiserver: StorageClasses from an informer (few, read for every pod
with a volume), a pod's PVCs by GET (fresh, and no cluster-wide cache of every PVC in memory).

A StorageClass missing from the cache is read by GET before it counts as absent: a class created a
moment before the pod may not have reached the watch yet. RBAC: get, list, watch on storageclasses; get
on persistentvolumeclaims.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcsi.k8s.informer import Informer, builtin_source
from localcsi.webhook.usage import LookupFailed, choose_default_class

READ_TIMEOUT_SECONDS = 2.0  # well inside the webhook's timeoutSeconds (5)


class KubeLookup:
    def __init__(self, api: client.ApiClient, timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self._core = client.CoreV1Api(api)
        self._storage = client.StorageV1Api(api)
        self._timeout = timeout
        self.classes = Informer(*builtin_source(api, "storageclasses"))

    def start(self, should_exit: Callable[[], bool]) -> None:
        self.classes.start(should_exit, name="informer-storageclasses")

    def synced(self) -> bool:
        return self.classes.wait_synced(0)

    def _read(self, call: Callable[..., Any], *args: str) -> Mapping[str, Any] | None:
        try:
            response = call(*args, _preload_content=False, _request_timeout=self._timeout)
            return cast(Mapping[str, Any], json.loads(response.data))
        except ApiException as error:
            if error.status == 404:
                return None
            raise LookupFailed(f"{error.status} {error.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise LookupFailed(str(error) or type(error).__name__) from None

    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._read(self._core.read_namespaced_persistent_volume_claim, name, namespace)

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        cached = self.classes.get(name)
        return cached if cached is not None else self._read(self._storage.read_storage_class, name)

    def default_class(self) -> Mapping[str, Any] | None:
        return choose_default_class(self.classes.cache().values())
