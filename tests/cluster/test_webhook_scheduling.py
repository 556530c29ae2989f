"""The webhook with the real kube-apiserver and kube-scheduler (issue 17).

kube-apiserver calls `localcsi webhook` over HTTPS on loopback, trusting a CA made for the test, through
the chart's own MutatingWebhookConfiguration (only its clientConfig points at the process's URL); the
webhook reads as the localcsi-webhook service account with the chart's RBAC. kube-scheduler runs with the
extender configured as deploy/scheduler configures it (managedResources localcsi.io/capacity,
ignoredByScheduler). As in test_extender_scheduling.py, nodes have no kubelet, no provisioner runs, and
the decision is the `selected-node` annotation on each PVC (or `spec.nodeName` of a pod without one).

The configuration, and the CSIDriver the last test makes, are deleted when the module ends: other
modules share this cluster and schedule without the webhook.
"""

from __future__ import annotations

import functools
import re
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from localcsi import DRIVER_NAME, TOPOLOGY_KEY
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.cluster_access import SYSTEM_NAMESPACE
from localcsi.testing.extender import ExtenderProcess
from localcsi.testing.scheduler import KubeScheduler
from localcsi.testing.storage_nodes import GIB, add_storage_node
from localcsi.testing.vm import free_port
from localcsi.testing.waiting import wait_for
from localcsi.testing.webhook import WebhookProcess, apply_webhook_rbac, chart_webhook_objects
from localcsi.webhook import CAPACITY_RESOURCE

SELECTED_NODE = "volume.kubernetes.io/selected-node"
OURS = "localcsi-webhook-test"
THEIRS = "other-webhook-test"
VG = "localcsi-pool"
GROUP_LABEL = "webhook-test.localcsi.io/group"
PAUSE = "registry.k8s.io/pause:3.10"


@functools.cache
def core(cluster: KubeCluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def storage_classes(kube_cluster: KubeCluster) -> None:
    storage = client.StorageV1Api(kube_cluster.api_client())
    for name, provisioner in ((OURS, DRIVER_NAME), (THEIRS, "other.example.com")):
        body = {
            "metadata": {"name": name},
            "provisioner": provisioner,
            "volumeBindingMode": "WaitForFirstConsumer",
            "parameters": {"volumeType": "LVM"} if provisioner == DRIVER_NAME else {},
        }
        storage.create_storage_class(body)


@pytest.fixture(scope="module")
def webhook(kube_cluster: KubeCluster, storage_classes: None) -> Iterator[WebhookProcess]:
    objects = chart_webhook_objects(SYSTEM_NAMESPACE)
    apply_webhook_rbac(kube_cluster, objects)
    process = WebhookProcess(kube_cluster, free_port(), free_port()).start()
    admission = client.AdmissionregistrationV1Api(kube_cluster.api_client())
    name = process.install(objects)
    try:
        yield process
    finally:
        admission.delete_mutating_webhook_configuration(name)
        assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def extender(kube_cluster: KubeCluster, webhook: WebhookProcess) -> Iterator[ExtenderProcess]:
    process = ExtenderProcess(kube_cluster, free_port()).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def scheduler(kube_cluster: KubeCluster, extender: ExtenderProcess) -> Iterator[KubeScheduler]:
    with KubeScheduler(kube_cluster, extender_url=extender.url, ignorable=True, managed_resources=True) as running:
        yield running


def make_namespace(cluster: KubeCluster, name: str) -> str:
    core(cluster).create_namespace({"metadata": {"name": name}})
    return name


def make_claim(cluster: KubeCluster, namespace: str, name: str, storage_class: str, size_gib: int = 1) -> None:
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": storage_class,
        "resources": {"requests": {"storage": f"{size_gib}Gi"}},
    }
    core(cluster).create_namespaced_persistent_volume_claim(namespace, {"metadata": {"name": name}, "spec": spec})


def pod_body(name: str, group: str, volumes: list[dict[str, Any]] | None = None, **container: Any) -> dict[str, Any]:
    containers = [{"name": "app", "image": PAUSE, **container}, {"name": "sidecar", "image": PAUSE}]
    spec = {"containers": containers, "volumes": volumes or [], "nodeSelector": {GROUP_LABEL: group}}
    return {"metadata": {"name": name}, "spec": spec}


def claim_volume(claim: str) -> dict[str, Any]:
    return {"name": "data", "persistentVolumeClaim": {"claimName": claim}}


def ephemeral(storage_class: str) -> dict[str, Any]:
    spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
            "resources": {"requests": {"storage": "1Gi"}}}  # fmt: skip
    return {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": spec}}}


def inline() -> dict[str, Any]:
    return {"name": "scratch", "csi": {"driver": DRIVER_NAME, "volumeAttributes": {"size": "1Gi"}}}


def capacity_of(pod: client.V1Pod) -> list[tuple[str, str, str | None, str | None]]:
    """(container, kind, request, limit) of the capacity resource, for every container that names it."""
    found = []
    for kind, containers in (("container", pod.spec.containers), ("init", pod.spec.init_containers or [])):
        for container in containers:
            requests = (container.resources.requests if container.resources else None) or {}
            limits = (container.resources.limits if container.resources else None) or {}
            if CAPACITY_RESOURCE in requests or CAPACITY_RESOURCE in limits:
                found.append((container.name, kind, requests.get(CAPACITY_RESOURCE), limits.get(CAPACITY_RESOURCE)))
    return found


MARKED = [("app", "container", "1", "1")]


def webhook_reviews(webhook: WebhookProcess) -> dict[str, float]:
    found = re.findall(r'^localcsi_webhook_reviews_total\{outcome="(\w+)"\} (\S+)$', webhook.metrics(), re.MULTILINE)
    return {outcome: float(value) for outcome, value in found}


def test_the_webhook_marks_exactly_the_pods_that_use_localcsi(
    kube_cluster: KubeCluster, webhook: WebhookProcess
) -> None:
    api = core(kube_cluster)
    namespace = make_namespace(kube_cluster, "webhook-mark")
    make_claim(kube_cluster, namespace, "ours", OURS)
    make_claim(kube_cluster, namespace, "theirs", THEIRS)
    group = "nowhere"  # no node: these pods are only admitted, never scheduled
    cpu = {"resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}}
    pods = {
        "pvc-ours": (pod_body("pvc-ours", group, [claim_volume("ours")]), True),
        "pvc-ours-with-resources": (pod_body("pvc-ours-with-resources", group, [claim_volume("ours")], **cpu), True),
        "ephemeral-ours": (pod_body("ephemeral-ours", group, [ephemeral(OURS)]), True),
        "inline-ours": (pod_body("inline-ours", group, [inline()]), True),
        "pvc-theirs": (pod_body("pvc-theirs", group, [claim_volume("theirs")]), False),
        "ephemeral-theirs": (pod_body("ephemeral-theirs", group, [ephemeral(THEIRS)]), False),
        "empty-dir": (pod_body("empty-dir", group, [{"name": "scratch", "emptyDir": {}}]), False),
        "plain": (pod_body("plain", group), False),
    }
    before = webhook_reviews(webhook)
    wrong = []
    for name, (body, marked) in pods.items():
        created = api.create_namespaced_pod(namespace, body)
        stored = api.read_namespaced_pod(name, namespace)
        for pod in (created, stored):
            if capacity_of(pod) != (MARKED if marked else []):
                wrong.append(f"{name}: {capacity_of(pod)}")
    assert not wrong, "\n".join(wrong) + f"\n{webhook.log()}"
    resources = api.read_namespaced_pod("pvc-ours-with-resources", namespace).spec.containers[0].resources
    assert resources.requests == {"cpu": "100m", "memory": "64Mi", CAPACITY_RESOURCE: "1"}  # memory: the default
    assert resources.limits == {"memory": "64Mi", CAPACITY_RESOURCE: "1"}
    # kube-system and the webhook's own namespace are never sent to it (the chart's namespaceSelector)
    for excluded in ("kube-system", SYSTEM_NAMESPACE):
        created = api.create_namespaced_pod(excluded, pod_body("inline-excluded", group, [inline()]))
        assert capacity_of(created) == []
        api.delete_namespaced_pod("inline-excluded", excluded, grace_period_seconds=0)
    after = webhook_reviews(webhook)
    assert after["mutated"] - before["mutated"] == 4
    assert after["unchanged"] - before["unchanged"] == 4
    assert (after["bad_request"], after["error"], after["ignored"]) == (0, 0, 0)
    api.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)


def extender_calls(extender: ExtenderProcess, verb: str = r"\w+") -> float:
    """Requests of ``verb`` (default: filter and prioritize) this extender answered, any status, from its
    /metrics."""
    with urllib.request.urlopen(f"{extender.url}/metrics", timeout=5) as response:  # noqa: S310 (http on loopback)
        text = response.read().decode()
    pattern = rf'^localcsi_extender_requests_total\{{code="\d+",verb="{verb}"\}} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def selected_nodes(cluster: KubeCluster, namespace: str) -> dict[str, str]:
    claims = core(cluster).list_namespaced_persistent_volume_claim(namespace).items
    return {c.metadata.name: (c.metadata.annotations or {}).get(SELECTED_NODE, "") for c in claims}


def bound_pods(cluster: KubeCluster, namespace: str) -> dict[str, str]:
    return {
        p.metadata.name: p.spec.node_name
        for p in core(cluster).list_namespaced_pod(namespace).items
        if p.spec.node_name
    }


def committed_gib(cluster: KubeCluster, namespace: str) -> dict[str, int]:
    per_node: dict[str, int] = {}
    for claim in core(cluster).list_namespaced_persistent_volume_claim(namespace).items:
        node = (claim.metadata.annotations or {}).get(SELECTED_NODE)
        if node:
            per_node[node] = per_node.get(node, 0) + int(claim.spec.resources.requests["storage"].removesuffix("Gi"))
    return per_node


def make_nodes(cluster: KubeCluster, group: str, count: int, size_gib: int) -> list[str]:
    names = [f"{group}-{index}" for index in range(count)]
    for name in names:
        add_storage_node(cluster, name, {VG: size_gib * GIB}, labels={GROUP_LABEL: group, TOPOLOGY_KEY: name})
    return names


def create_claimed_pod(cluster: KubeCluster, namespace: str, name: str, group: str, size_gib: int) -> client.V1Pod:
    make_claim(cluster, namespace, name, OURS, size_gib)
    return core(cluster).create_namespaced_pod(namespace, pod_body(name, group, [claim_volume(name)]))


def test_the_extender_is_asked_only_about_marked_pods(
    kube_cluster: KubeCluster, scheduler: KubeScheduler, extender: ExtenderProcess
) -> None:
    make_nodes(kube_cluster, "wh-fit", 2, 20)
    namespace = make_namespace(kube_cluster, "webhook-fit")
    api = core(kube_cluster)

    def logs() -> str:
        return f"extender:\n{extender.log()}\nscheduler:\n{scheduler.log()}"

    before, filters_before = extender_calls(extender), extender_calls(extender, "filter")
    for index in range(10):
        api.create_namespaced_pod(namespace, pod_body(f"plain-{index}", "wh-fit"))
    wait_for("10 plain pods bound", lambda: len(bound_pods(kube_cluster, namespace)) == 10, 60, context=logs)
    assert extender_calls(extender) == before, "the extender was asked about pods without localcsi volumes"
    for index in range(3):
        pod = create_claimed_pod(kube_cluster, namespace, f"ours-{index}", "wh-fit", 10)
        assert capacity_of(pod) == MARKED
    wait_for("3 localcsi pods placed", lambda: all(selected_nodes(kube_cluster, namespace).values()), 60, context=logs)
    # one filter per pod (prioritize is skipped when one node is left)
    assert extender_calls(extender, "filter") - filters_before == 3, extender.log()
    assert max(committed_gib(kube_cluster, namespace).values()) <= 20


def test_racing_marked_pods_over_commit_nothing(
    kube_cluster: KubeCluster, scheduler: KubeScheduler, extender: ExtenderProcess
) -> None:
    """Issue 5's race, through the webhook: 12 pods of one 10 GiB PVC at once against 4 nodes of 20 GiB."""
    make_nodes(kube_cluster, "wh-race", 4, 20)
    namespace = make_namespace(kube_cluster, "webhook-race")
    core(kube_cluster)
    with ThreadPoolExecutor(6) as pool:
        created = list(
            pool.map(lambda i: create_claimed_pod(kube_cluster, namespace, f"p{i}", "wh-race", 10), range(12))
        )
    assert all(capacity_of(pod) == MARKED for pod in created)

    def placed() -> int:
        return sum(1 for node in selected_nodes(kube_cluster, namespace).values() if node)

    wait_for("8 pods placed", lambda: placed() >= 8, 90, context=extender.log)
    quiet_until = time.monotonic() + 8  # the 4 that do not fit keep being retried: none may land
    while time.monotonic() < quiet_until:
        assert placed() == 8, committed_gib(kube_cluster, namespace)
        time.sleep(0.5)
    assert max(committed_gib(kube_cluster, namespace).values()) <= 20, committed_gib(kube_cluster, namespace)


@pytest.fixture
def capacity_tracking(kube_cluster: KubeCluster) -> Iterator[None]:
    """The CSIDriver with storageCapacity: kube-scheduler's VolumeBinding then checks CSIStorageCapacity."""
    storage = client.StorageV1Api(kube_cluster.api_client())
    driver = {"metadata": {"name": DRIVER_NAME}, "spec": {"attachRequired": False, "storageCapacity": True}}
    storage.create_csi_driver(driver)
    try:
        yield
    finally:
        storage.delete_csi_driver(DRIVER_NAME)


def test_a_pod_admitted_while_the_webhook_is_down_is_placed_by_csi_storage_capacity(
    kube_cluster: KubeCluster,
    scheduler: KubeScheduler,
    extender: ExtenderProcess,
    webhook: WebhookProcess,
    capacity_tracking: None,
) -> None:
    small, big = make_nodes(kube_cluster, "wh-cap", 2, 100)  # the extender would see room on both
    namespace = make_namespace(kube_cluster, "webhook-capacity")
    storage = client.StorageV1Api(kube_cluster.api_client())
    for node, capacity in ((small, "5Gi"), (big, "50Gi")):
        body = {
            "metadata": {"name": f"capacity-{node}"},
            "storageClassName": OURS,
            "nodeTopology": {"matchLabels": {TOPOLOGY_KEY: node}},
            "capacity": capacity,
        }
        storage.create_namespaced_csi_storage_capacity(namespace, body)
    before = extender_calls(extender)
    assert webhook.stop() == 0, webhook.log()
    try:
        down = create_claimed_pod(kube_cluster, namespace, "while-down", "wh-cap", 10)
    finally:
        webhook.start()
    assert capacity_of(down) == []  # admitted unchanged: failurePolicy Ignore
    wait_for(
        "the pod placed",
        lambda: selected_nodes(kube_cluster, namespace).get("while-down"),
        60,
        context=lambda: f"{scheduler.log()}",
    )
    assert selected_nodes(kube_cluster, namespace)["while-down"] == big  # the only node with 10 GiB published
    assert extender_calls(extender) == before, "an unmarked pod reached the extender"
    # the webhook is back: new pods are marked again; the pod admitted meanwhile stays unmarked
    assert capacity_of(create_claimed_pod(kube_cluster, namespace, "after", "wh-cap", 10)) == MARKED
    assert capacity_of(core(kube_cluster).read_namespaced_pod("while-down", namespace)) == []
    wait_for("the marked pod placed", lambda: selected_nodes(kube_cluster, namespace).get("after"), 60)
    assert extender_calls(extender) > before
