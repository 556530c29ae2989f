"""The webhook's RBAC in the rendered chart (webhook.enabled=true) is exactly what its code calls.

The calls are not written down here by hand: the webhook's only Kubernetes client, ``KubeLookup``, runs
against a recording HTTP server that answers like an apiserver (list, a watch stream, GETs and a 404), while
``decide`` reviews a pod of every volume kind. Each request is turned into the RBAC verb the apiserver
would check (GET of a name: get; of a collection: list, or watch with ``watch=true``; POST: create; ...),
and the chart's ClusterRole must grant that set and nothing else; nothing else in the render may grant the
webhook's ServiceAccount anything.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from localcsi import DRIVER_NAME
from localcsi.k8s.kubeconfig import ClusterConfig
from localcsi.k8s.rest import KubeApi
from localcsi.testing.install import load_project_script
from localcsi.testing.stub_apiserver import Reply, Request, StubApiserver, status_reply
from localcsi.webhook.admission import decide, parse_review
from localcsi.webhook.lookup import KubeLookup

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
WEBHOOK_SOURCES = REPO / "src" / "localcsi" / "webhook"
GENERATE = load_project_script("deploy/generate.py")
NAMESPACE = "storage"
ON = ("--set", "webhook.enabled=true")
ALL_ON = ("--values", str(REPO / "deploy" / "helm" / "localcsi" / "ci" / "all-on-values.yaml"))
ACCOUNT = {"kind": "ServiceAccount", "name": "localcsi-webhook", "namespace": NAMESPACE}
Object = dict[str, Any]
Grant = tuple[str, str, str]  # (API group, resource, verb)
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


# -- what the code calls ----------------------------------------------------------------------------


def storage_class(name: str, provisioner: str = DRIVER_NAME, default: bool = False) -> Object:
    metadata: Object = {"name": name, "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"}
    if default:
        metadata["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": metadata, "provisioner": provisioner}


LISTED = [storage_class("localcsi-lvm"), storage_class("nfs", provisioner="nfs.csi.k8s.io")]
WATCHED = storage_class("local-default", default=True)  # arrives by the watch, after the list
LATE = storage_class("late")  # created a moment before the pod: not in the cache yet, read by GET
CLAIMS = {
    ("shop", "data"): {"metadata": {"name": "data", "namespace": "shop"}, "spec": {"storageClassName": "localcsi-lvm"}}
}


class Recorder:
    """Answers the webhook's client over real HTTP (a StubApiserver): every request is recorded as the RBAC
    (group, resource, verb) it needs, and answered from the objects above. The watch stream sends one event
    and stays open until ``closed``."""

    def __init__(self) -> None:
        self.grants: set[Grant] = set()
        self.watching = threading.Event()
        self.closed = threading.Event()
        self.unexpected = ""

    def handle(self, request: Request) -> Reply:
        group, resource, namespace, name = parse_path(unquote(request.path))
        verb = verb_of(request.method, name, watch=request.query.get("watch") == "true")
        self.grants.add((group, resource, verb))
        if (resource, verb) == ("storageclasses", "list"):
            return Reply(body={"metadata": {"resourceVersion": "1"}, "items": LISTED})
        if (resource, verb) == ("storageclasses", "watch"):
            return Reply(chunks=self._watch())
        if (resource, verb) == ("storageclasses", "get") and name == LATE["metadata"]["name"]:
            return Reply(body=LATE)
        if (resource, verb) == ("persistentvolumeclaims", "get") and (namespace, name) in CLAIMS:
            return Reply(body=CLAIMS[namespace, name])
        if verb == "get":
            return status_reply(404, "NotFound", f"{resource} {name!r} not found")
        self.unexpected = f"the webhook made a call no test expects: {request.method} {request.path}"
        return status_reply(500, "InternalError", self.unexpected)

    def _watch(self) -> Iterator[bytes]:
        yield json.dumps({"type": "ADDED", "object": WATCHED}).encode() + b"\n"
        self.watching.set()
        self.closed.wait(10)


def parse_path(path: str) -> tuple[str, str, str, str]:
    """(group, resource, namespace, name) of an API path: /api/v1/namespaces/ns/persistentvolumeclaims/x,
    /apis/storage.k8s.io/v1/storageclasses, ..."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")  # a subresource: pods/status
    return group, resource, namespace, rest[1] if len(rest) > 1 else ""


def verb_of(method: str, name: str, watch: bool) -> str:
    if method == "GET":
        return "get" if name else "watch" if watch else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
        "delete" if name else "deletecollection"
    )


def admission_review(*volumes: Object) -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], "volumes": list(volumes)},
    }
    request = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "shop",
        "operation": "CREATE",
        "object": pod,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).encode()


def claim_template(class_name: str | None) -> Object:
    spec: Object = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    return {"volumeClaimTemplate": {"spec": spec}}


# Every way a pod can reach the apiserver through the webhook, and what it decides.
PODS: list[tuple[tuple[Object, ...], str]] = [
    (({"name": "v", "persistentVolumeClaim": {"claimName": "data"}},), "mutated"),  # claim GET, class cached
    (({"name": "v", "persistentVolumeClaim": {"claimName": "later"}},), "mutated"),  # claim 404: marked
    (({"name": "v", "ephemeral": claim_template(None)},), "mutated"),  # the default class, from the watch
    (({"name": "v", "ephemeral": claim_template("late")},), "mutated"),  # class not cached: GET
    (({"name": "v", "ephemeral": claim_template("gone")},), "mutated"),  # class GET 404: marked
    (({"name": "v", "ephemeral": claim_template("nfs")},), "unchanged"),
    (({"name": "v", "csi": {"driver": DRIVER_NAME, "volumeAttributes": {"size": "1Gi"}}},), "mutated"),
    ((), "unchanged"),
]


@functools.cache
def calls_of_the_code() -> frozenset[Grant]:
    api = Recorder()
    stop = threading.Event()
    with StubApiserver(api.handle) as server:
        try:
            _decide_every_pod(KubeLookup(KubeApi(ClusterConfig(server.url))), api, stop)
        finally:
            stop.set()
            api.closed.set()
    assert not api.unexpected, api.unexpected
    return frozenset(api.grants)


def _decide_every_pod(lookup: KubeLookup, api: Recorder, stop: threading.Event) -> None:
    lookup.start(stop.is_set)
    assert lookup.classes.wait_synced(10) and api.watching.wait(10)
    deadline = time.monotonic() + 10
    while lookup.default_class() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lookup.synced()
    for volumes, outcome in PODS:
        decision = decide(parse_review(admission_review(*volumes)), lookup)
        assert decision.outcome == outcome, (volumes, decision)


def test_the_code_gets_claims_and_reads_classes_through_an_informer() -> None:
    assert calls_of_the_code() == {
        ("", "persistentvolumeclaims", "get"),
        ("storage.k8s.io", "storageclasses", "get"),
        ("storage.k8s.io", "storageclasses", "list"),
        ("storage.k8s.io", "storageclasses", "watch"),
    }


def test_only_the_lookup_talks_to_the_apiserver() -> None:
    """So that recording KubeLookup is recording the webhook: no other module of the package imports a
    Kubernetes client, main.py only builds the client it hands to KubeLookup, and every public method
    of KubeLookup is one the recording above runs."""
    clients: dict[str, set[str]] = {}
    for path in sorted(WEBHOOK_SOURCES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("kubernetes", "localcsi.k8s")):
                clients.setdefault(path.name, set()).update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import) and any(alias.name.startswith("kubernetes") for alias in node.names):
                clients.setdefault(path.name, set()).add("kubernetes")
    assert clients == {
        "lookup.py": {"KubeError", "NotFound", "Informer", "builtin_source", "KubeApi", "resource_path"},
        "main.py": {"api_client"},
    }
    main = (WEBHOOK_SOURCES / "main.py").read_text()
    assert main.count("api_client(") == 1 and main.count("(api)") == 1 and "KubeLookup(api)" in main
    public = {name for name, _ in inspect.getmembers(KubeLookup, inspect.isfunction) if not name.startswith("_")}
    assert public == {"start", "synced", "claim", "storage_class", "default_class"}


# -- what the chart grants --------------------------------------------------------------------------


@functools.cache
def render(*values: str) -> tuple[Object, ...]:
    return tuple(doc for doc in yaml.safe_load_all(GENERATE.template(values, namespace=NAMESPACE, crds=False)) if doc)


def rbac_of(objects: tuple[Object, ...]) -> dict[tuple[str, str], Object]:
    kinds = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in objects if doc["kind"] in kinds}


def granted(role: Object) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def roles_bound_to(account: Mapping[str, str], objects: tuple[Object, ...]) -> list[tuple[str, str]]:
    return [
        (doc["roleRef"]["kind"], doc["roleRef"]["name"])
        for doc in objects
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding") and dict(account) in doc["subjects"]
    ]


@pytest.mark.parametrize("values", [ON, ALL_ON], ids=["webhook-on", "all-on"])
def test_the_webhook_is_granted_exactly_what_its_code_calls(values: tuple[str, ...]) -> None:
    objects = render(*values)
    rbac = rbac_of(objects)
    assert roles_bound_to(ACCOUNT, objects) == [("ClusterRole", "localcsi-webhook")]
    role = rbac["ClusterRole", "localcsi-webhook"]
    assert granted(role) == calls_of_the_code()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, nonResourceURLs
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert not WRITE_VERBS & set(rule["verbs"]), rule
    binding = rbac["ClusterRoleBinding", "localcsi-webhook"]
    assert binding["subjects"] == [ACCOUNT]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "localcsi-webhook",
    }
    assert rbac["ServiceAccount", "localcsi-webhook"]["metadata"]["namespace"] == NAMESPACE
    (deployment,) = [
        doc for doc in objects if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "localcsi-webhook"
    ]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "localcsi-webhook"
    assert pod.get("automountServiceAccountToken", True) is True  # it needs its token, and only its own


def test_the_webhook_reads_its_certificate_from_a_mounted_secret_not_the_api() -> None:
    """The serving certificate arrives as files; no rule of the webhook names Secrets (helm writes the
    Secret at install, cert-manager writes it for the cainjector)."""
    role = rbac_of(render(*ON))["ClusterRole", "localcsi-webhook"]
    assert {resource for _, resource, _ in granted(role)} == {"persistentvolumeclaims", "storageclasses"}


def test_turning_the_webhook_on_adds_its_own_rbac_and_changes_no_other() -> None:
    off, on = rbac_of(render()), rbac_of(render(*ON))
    added = {key: doc for key, doc in on.items() if key not in off}
    assert set(added) == {
        ("ServiceAccount", "localcsi-webhook"),
        ("ClusterRole", "localcsi-webhook"),
        ("ClusterRoleBinding", "localcsi-webhook"),
    }
    assert {key: doc for key, doc in on.items() if key in off} == off
    for doc in added.values():
        assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
