"""Our custom resources over the dynamic CustomObjectsApi, as plain dicts with the apiserver's JSON keys."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcsi import API_GROUP, API_VERSION
from localcsi.k8s.errors import error_from_status, translate, translated

Object = dict[str, Any]
# Every call but a watch: a hung request must not outlive a leader's lease (see k8s/leader.py).
REQUEST_TIMEOUT_SECONDS = 10
# Raw JSON bodies (the apiserver's own keys, no model classes) and the timeout.
_CALL: dict[str, Any] = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT_SECONDS}


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


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Object


def _raw(response: Any) -> Object:
    return cast(Object, json.loads(response.data))


def stream_events(
    list_call: Callable[..., Any], resource_version: str, timeout_seconds: int, **kwargs: Any
) -> Iterator[WatchEvent]:
    """Watch events of a list call as raw dicts; raises Gone when the resource version has expired.

    The events are read as the apiserver writes them, one JSON object a line. (The client's own
    ``Watch`` also builds a model object for every event of a built-in kind, which cost the extender
    most of its CPU when pods arrive quickly.)
    """
    try:
        response = list_call(
            watch=True,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True,
            _preload_content=False,
            **kwargs,
        )
    except ApiException as error:
        raise translate(error) from None
    try:
        pending = b""
        for chunk in response.stream(amt=None, decode_content=False):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    yield _watch_event(json.loads(line))
        if pending.strip():
            yield _watch_event(json.loads(pending))
    finally:
        response.close()
        response.release_conn()


def _watch_event(event: Object) -> WatchEvent:
    kind, obj = str(event.get("type") or ""), event.get("object") or {}
    if kind == "ERROR":  # a metav1.Status, e.g. 410 Expired when the resource version is too old
        raise error_from_status(obj)
    return WatchEvent(kind, cast(Object, obj))


class CustomResources:
    """CRUD, status and watch for one kind of our cluster-scoped resources."""

    def __init__(self, api: client.ApiClient, kind: Kind) -> None:
        self.kind = kind
        self._api = client.CustomObjectsApi(api)

    def _scope(self) -> tuple[str, str, str]:
        return self.kind.group, self.kind.version, self.kind.plural

    @translated
    def get(self, name: str) -> Object | None:
        try:
            return _raw(self._api.get_cluster_custom_object(*self._scope(), name, **_CALL))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    @translated
    def list(self, label_selector: str | None = None, field_selector: str | None = None) -> tuple[list[Object], str]:
        kwargs = _selectors(label_selector, field_selector)
        body = _raw(self._api.list_cluster_custom_object(*self._scope(), **_CALL, **kwargs))
        return list(body.get("items") or []), str(body.get("metadata", {}).get("resourceVersion", ""))

    @translated
    def create(self, body: Mapping[str, Any]) -> Object:
        body = {"apiVersion": self.kind.api_version, "kind": self.kind.kind, **body}
        return _raw(self._api.create_cluster_custom_object(*self._scope(), body, **_CALL))

    @translated
    def replace(self, body: Object) -> Object:
        name = body["metadata"]["name"]
        return _raw(self._api.replace_cluster_custom_object(*self._scope(), name, body, **_CALL))

    @translated
    def patch(self, name: str, merge_patch: Object) -> Object:
        return _raw(self._api.patch_cluster_custom_object(*self._scope(), name, merge_patch, **_CALL))

    @translated
    def patch_status(self, name: str, status: Object) -> Object:
        call = self._api.patch_cluster_custom_object_status
        return _raw(call(*self._scope(), name, {"status": status}, **_CALL))

    @translated
    def replace_status(self, body: Object) -> Object:
        name = body["metadata"]["name"]
        return _raw(self._api.replace_cluster_custom_object_status(*self._scope(), name, body, **_CALL))

    @translated
    def delete(self, name: str) -> bool:
        try:
            self._api.delete_cluster_custom_object(*self._scope(), name, **_CALL)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def watch(
        self,
        resource_version: str,
        timeout_seconds: int,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[WatchEvent]:
        group, version, plural = self._scope()
        kwargs = _selectors(label_selector, field_selector)
        kwargs.update(group=group, version=version, plural=plural)
        return stream_events(self._api.list_cluster_custom_object, resource_version, timeout_seconds, **kwargs)


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, Any]:
    selectors = {"label_selector": label_selector, "field_selector": field_selector}
    return {key: value for key, value in selectors.items() if value}
