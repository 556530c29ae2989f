"""Our custom resources (and other CRD-served kinds) as plain dicts with the apiserver's JSON keys."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from localcsi import API_GROUP, API_VERSION
from localcsi.k8s.errors import NotFound
from localcsi.k8s.rest import KubeApi, Object, WatchEvent, resource_path

__all__ = [
    "LOGICAL_VOLUME",
    "NODE_LOCAL_STORAGE",
    "NODE_LOCAL_STORAGE_INIT_CONFIG",
    "CustomResources",
    "Kind",
    "Object",
    "WatchEvent",
]


@dataclass(frozen=True)
class Kind:
    plural: str
    kind: str
    group: str = API_GROUP
    version: str = API_VERSION
    namespaced: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


NODE_LOCAL_STORAGE = Kind("nodelocalstorages", "NodeLocalStorage")
NODE_LOCAL_STORAGE_INIT_CONFIG = Kind("nodelocalstorageinitconfigs", "NodeLocalStorageInitConfig")
LOGICAL_VOLUME = Kind("logicalvolumes", "LogicalVolume")


class CustomResources:
    """CRUD, status and watch for one cluster-scoped kind (a namespaced one: list and watch across all
    namespaces)."""

    def __init__(self, api: KubeApi, kind: Kind) -> None:
        self.kind = kind
        self._api = api

    def _path(self, name: str | None = None, subresource: str | None = None) -> str:
        kind = self.kind
        return resource_path(kind.group, kind.version, kind.plural, name, subresource=subresource)

    def get(self, name: str) -> Object | None:
        try:
            return self._api.get(self._path(name))
        except NotFound:
            return None

    def list(self, label_selector: str | None = None, field_selector: str | None = None) -> tuple[list[Object], str]:
        query = {"labelSelector": label_selector, "fieldSelector": field_selector}
        return self._api.list(self._path(), query)

    def create(self, body: Mapping[str, Any]) -> Object:
        body = {"apiVersion": self.kind.api_version, "kind": self.kind.kind, **body}
        return self._api.create(self._path(), body)

    def replace(self, body: Object) -> Object:
        return self._api.replace(self._path(body["metadata"]["name"]), body)

    def patch(self, name: str, merge_patch: Object) -> Object:
        return self._api.merge_patch(self._path(name), merge_patch)

    def patch_status(self, name: str, status: Object) -> Object:
        return self._api.merge_patch(self._path(name, "status"), {"status": status})

    def replace_status(self, body: Object) -> Object:
        path = self._path(body["metadata"]["name"], "status")
        return self._api.replace(path, body)

    def delete(self, name: str) -> bool:
        try:
            self._api.delete(self._path(name))
        except NotFound:
            return False
        return True

    def watch(
        self,
        resource_version: str,
        timeout_seconds: int,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[WatchEvent]:
        query = {"labelSelector": label_selector, "fieldSelector": field_selector}
        return self._api.watch(self._path(), resource_version, timeout_seconds, query)
