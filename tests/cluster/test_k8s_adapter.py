"""The Kubernetes adapter against the real kube-apiserver: CRUD, optimistic concurrency, the status
subresource, watches and the informer, on a throwaway CRD of this test's own."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from localcsi.k8s import errors
from localcsi.k8s.events import EventRecorder
from localcsi.k8s.informer import Informer, builtin_source, custom_source
from localcsi.k8s.resources import CustomResources, Kind
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.tools import ETCD, KUBE_APISERVER, KUBE_SCHEDULER, tool_path

WIDGETS = Kind("widgets", "Widget", group="adapter-test.localcsi.io", version="v1")

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.adapter-test.localcsi.io"},
    "spec": {
        "group": "adapter-test.localcsi.io",
        "scope": "Cluster",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widgets(kube_cluster: KubeCluster) -> Iterator[CustomResources]:
    api = client.ApiextensionsV1Api(kube_cluster.api_client())
    api.create_custom_resource_definition(WIDGET_CRD)
    deadline = time.monotonic() + 30
    resources = CustomResources(kube_cluster.kube_api(), WIDGETS)
    while True:  # Established, and the new endpoint served
        try:
            resources.list()
            break
        except errors.KubeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield resources
    api.delete_custom_resource_definition(WIDGET_CRD["metadata"]["name"])


def widget(name: str, size: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"size": size}}


def test_the_cluster_serves_our_crds_and_rbac(kube_cluster: KubeCluster) -> None:
    names = {
        crd.metadata.name
        for crd in client.ApiextensionsV1Api(kube_cluster.api_client()).list_custom_resource_definition().items
    }
    assert {
        "nodelocalstorages.localcsi.io",
        "nodelocalstorageinitconfigs.localcsi.io",
        "logicalvolumes.localcsi.io",
    } <= names
    roles = {
        role.metadata.name
        for role in client.RbacAuthorizationV1Api(kube_cluster.api_client()).list_cluster_role().items
    }
    assert {"localcsi-agent", "localcsi-controller"} <= roles


def test_create_get_patch_delete(widgets: CustomResources) -> None:
    created = widgets.create(widget("crud", 3))
    assert created["kind"] == "Widget" and created["spec"] == {"size": 3}
    with pytest.raises(errors.AlreadyExists):
        widgets.create(widget("crud"))
    assert widgets.patch("crud", {"spec": {"size": 5}})["spec"]["size"] == 5
    got = widgets.get("crud")
    assert got is not None and got["spec"]["size"] == 5
    assert widgets.delete("crud") is True
    assert widgets.get("crud") is None
    assert widgets.delete("crud") is False


def test_schema_violations_come_back_invalid_with_the_field(widgets: CustomResources) -> None:
    with pytest.raises(errors.Invalid) as caught:
        widgets.create(widget("bad", 0))
    assert "spec.size" in caught.value.message


def test_a_stale_replace_is_a_conflict(widgets: CustomResources) -> None:
    first = widgets.create(widget("occ"))
    widgets.patch("occ", {"spec": {"size": 2}})
    first["spec"]["size"] = 9
    with pytest.raises(errors.Conflict):
        widgets.replace(first)
    widgets.delete("occ")


def test_status_is_written_only_through_the_subresource(widgets: CustomResources) -> None:
    widgets.create(widget("st"))
    widgets.patch("st", {"status": {"phase": "ignored"}})
    assert "status" not in (widgets.get("st") or {})
    assert widgets.patch_status("st", {"phase": "Ready"})["status"] == {"phase": "Ready"}
    widgets.delete("st")


def test_watch_and_an_expired_resource_version(widgets: CustomResources) -> None:
    _, version = widgets.list()
    widgets.create(widget("w1"))
    events = list(widgets.watch(version, timeout_seconds=2))
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "w1")]
    widgets.delete("w1")
    with pytest.raises(errors.Gone):
        list(widgets.watch("1", timeout_seconds=2))


def test_informer_follows_changes(widgets: CustomResources, kube_cluster: KubeCluster) -> None:
    informer = Informer(*custom_source(widgets))
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    informer.add_handler(lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    thread = informer.start(stop.is_set)
    try:
        assert informer.wait_synced(10)
        widgets.create(widget("inf"))
        widgets.patch("inf", {"spec": {"size": 4}})
        deadline = time.monotonic() + 10
        while (informer.get("inf") or {}).get("spec", {}).get("size") != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert informer.cache()["inf"]["spec"]["size"] == 4
        widgets.delete("inf")
        while "inf" in informer.cache() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "inf" not in informer.cache()
        assert seen[-3:] == [("ADDED", "inf"), ("MODIFIED", "inf"), ("DELETED", "inf")]
    finally:
        stop.set()
        widgets.create(widget("wake"))  # ends the open watch so the thread notices the stop
        thread.join(timeout=15)
        widgets.delete("wake")


def test_builtin_informer_and_events(kube_cluster: KubeCluster) -> None:
    kube_cluster.add_node("adapter-node", labels={"tier": "test"})
    list_fn, _ = builtin_source(kube_cluster.kube_api(), "nodes", label_selector="tier=test")
    items, version = list_fn()
    assert [n["metadata"]["name"] for n in items] == ["adapter-node"] and version
    node = items[0]
    recorder = EventRecorder(kube_cluster.kube_api(), component="localcsi-test", host="host-1")
    recorder.record({"apiVersion": "v1", "kind": "Node", **node}, "Warning", "TestReason", "something to act on")
    events = client.CoreV1Api(kube_cluster.api_client()).list_namespaced_event("default").items
    mine = [e for e in events if e.reason == "TestReason"]
    assert len(mine) == 1
    assert (mine[0].involved_object.name, mine[0].type, mine[0].message) == (
        "adapter-node",
        "Warning",
        "something to act on",
    )
    kube_cluster.delete_node("adapter-node")


def test_the_go_built_binaries_are_the_pinned_versions() -> None:
    for tool in (KUBE_APISERVER, KUBE_SCHEDULER):
        out = subprocess.run([str(tool_path(tool.name)), "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"Kubernetes {tool.version}"
    out = subprocess.run([str(tool_path("etcd")), "--version"], capture_output=True, text=True, check=True)
    assert f"etcd Version: {ETCD.version.removeprefix('v')}" in out.stdout
