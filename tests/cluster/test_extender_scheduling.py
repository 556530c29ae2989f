"""The extender with the real kube-scheduler (v1.31, built from Go modules) and the real apiserver.

Nodes are Node objects with NodeLocalStorage status and no kubelet; no provisioner runs, so the
scheduler's decision is the `volume.kubernetes.io/selected-node` annotation its binding cycle writes
on each PVC (the pod then waits in PreBind for a PV that never comes). Each test labels its own nodes
and selects them, so tests do not see each other's space. The extender runs as `localcsi extender`
in its own process, as the localcsi-extender service account, so deploy/rbac/extender.yaml is what
authorizes it.
"""

from __future__ import annotations

import functools
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client

from localcsi import DRIVER_NAME
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.extender import ExtenderProcess
from localcsi.testing.scheduler import KubeScheduler
from localcsi.testing.storage_nodes import GIB, add_storage_node
from localcsi.testing.vm import free_port
from localcsi.testing.waiting import wait_for

SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_CLASS = "localcsi-extender-test"
VG = "localcsi-pool"
GROUP_LABEL = "extender-test.localcsi.io/group"


@pytest.fixture(scope="module")
def storage_class(kube_cluster: KubeCluster) -> str:
    storage = client.StorageV1Api(kube_cluster.api_client())
    body = {
        "metadata": {"name": STORAGE_CLASS},
        "provisioner": DRIVER_NAME,
        "volumeBindingMode": "WaitForFirstConsumer",
        "parameters": {"volumeType": "LVM"},
    }
    try:
        storage.create_storage_class(body)
    except client.exceptions.ApiException as error:
        if error.status != 409:
            raise
    return STORAGE_CLASS


@pytest.fixture(scope="module")
def extender(kube_cluster: KubeCluster, storage_class: str) -> Iterator[ExtenderProcess]:
    process = ExtenderProcess(kube_cluster, free_port()).start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def scheduler(kube_cluster: KubeCluster, extender: ExtenderProcess) -> Iterator[KubeScheduler]:
    with KubeScheduler(kube_cluster, extender_url=extender.url) as running:
        yield running


@functools.cache
def core(cluster: KubeCluster) -> client.CoreV1Api:
    """One client per cluster: KubeCluster rewrites the kubeconfig file on each api_client() call,
    which threads creating pods at once would read half-written."""
    return client.CoreV1Api(cluster.api_client())


def make_nodes(cluster: KubeCluster, group: str, sizes_gib: dict[str, int]) -> None:
    for name, size in sizes_gib.items():
        add_storage_node(cluster, name, {VG: size * GIB}, labels={GROUP_LABEL: group})


def make_namespace(cluster: KubeCluster, name: str) -> str:
    core(cluster).create_namespace({"metadata": {"name": name}})
    return name


def pvc_body(name: str, size_gib: int, storage_class: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": f"{size_gib}Gi"}},
        },
    }


def create_pod(
    cluster: KubeCluster,
    namespace: str,
    name: str,
    group: str,
    sizes_gib: list[int],
    *,
    storage_class: str = STORAGE_CLASS,
) -> None:
    api = core(cluster)
    volumes = []
    for index, size in enumerate(sizes_gib):
        claim = f"{name}-{index}"
        api.create_namespaced_persistent_volume_claim(namespace, pvc_body(claim, size, storage_class))
        volumes.append({"name": f"v{index}", "persistentVolumeClaim": {"claimName": claim}})
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        "volumes": volumes,
        "nodeSelector": {GROUP_LABEL: group},
    }
    api.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})


def selected_nodes(cluster: KubeCluster, namespace: str) -> dict[str, str]:
    claims = core(cluster).list_namespaced_persistent_volume_claim(namespace).items
    return {c.metadata.name: (c.metadata.annotations or {}).get(SELECTED_NODE, "") for c in claims}


def committed_gib(cluster: KubeCluster, namespace: str) -> dict[str, int]:
    per_node: dict[str, int] = {}
    for claim in core(cluster).list_namespaced_persistent_volume_claim(namespace).items:
        node = (claim.metadata.annotations or {}).get(SELECTED_NODE)
        if node:
            size = int(claim.spec.resources.requests["storage"].removesuffix("Gi"))
            per_node[node] = per_node.get(node, 0) + size
    return per_node


def settle(read: Callable[[], int], quiet: float, timeout: float) -> int:
    """Poll until the value has not changed for ``quiet`` seconds; returns it."""
    last, since, deadline = read(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        value = read()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
    return last


def scheduling_events(cluster: KubeCluster, namespace: str, pod: str) -> list[str]:
    events = core(cluster).list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
    return [e.message or "" for e in events if e.reason == "FailedScheduling"]


def pod_of(claim: str) -> str:
    return claim.rsplit("-", 1)[0]


def scheduled_volumes(cluster: KubeCluster, namespace: str, pod: str) -> dict[str, str]:
    return {claim: node for claim, node in selected_nodes(cluster, namespace).items() if pod_of(claim) == pod and node}


NODE_SIZES = {"fit-small": 8, "fit-medium": 16, "fit-large": 40}


def test_pods_get_a_node_that_holds_all_their_volumes(
    kube_cluster: KubeCluster, scheduler: KubeScheduler, extender: ExtenderProcess
) -> None:
    make_nodes(kube_cluster, "fit", NODE_SIZES)
    namespace = make_namespace(kube_cluster, "extender-fit")

    def logs() -> str:
        return f"extender:\n{extender.log()}\nscheduler:\n{scheduler.log()}"

    # one at a time, each a case only a volume-aware scheduler gets right
    cases = [("three", [10, 10, 10], {"fit-large"}), ("two", [6, 6], {"fit-medium"}), ("one", [6], None)]
    for name, volumes, expected in cases:
        create_pod(kube_cluster, namespace, name, "fit", volumes)
        wait_for(
            f"pod {name} scheduled",
            lambda: len(scheduled_volumes(kube_cluster, namespace, name)) == len(volumes),  # noqa: B023
            60,
            context=logs,
        )
        nodes = set(scheduled_volumes(kube_cluster, namespace, name).values())
        assert len(nodes) == 1, f"{name}'s volumes were split over {nodes}"
        if expected is not None:
            assert nodes == expected
    assert all(gib <= NODE_SIZES[node] for node, gib in committed_gib(kube_cluster, namespace).items())
    # fits nowhere: stays pending, and the event says why
    create_pod(kube_cluster, namespace, "huge", "fit", [30, 30])
    wait_for("FailedScheduling event", lambda: scheduling_events(kube_cluster, namespace, "huge"), 60, context=logs)
    (message, *_) = scheduling_events(kube_cluster, namespace, "huge")
    assert "localcsi: no VG has room for PVC extender-fit/huge-" in message
    assert scheduled_volumes(kube_cluster, namespace, "huge") == {}
    with urllib.request.urlopen(f"http://127.0.0.1:{extender.port}/metrics", timeout=5) as response:
        assert 'localcsi_extender_requests_total{code="200",verb="filter"}' in response.read().decode()


def placed(cluster: KubeCluster, namespace: str) -> int:
    return sum(1 for node in selected_nodes(cluster, namespace).values() if node)


def race(
    kube_cluster: KubeCluster,
    namespace: str,
    group: str,
    during: Callable[[], None] | None = None,
    stagger: float = 0.0,
) -> int:
    """30 pods of one 10 GiB PVC created at once (or pod i after ``i * stagger`` seconds) against 10
    nodes of 20 GiB: room for 20. ``during`` runs beside the creation, so it can act while the first
    pods are being scheduled."""
    core(kube_cluster)  # built before the threads share it

    def create(index: int) -> None:
        time.sleep(index * stagger)
        create_pod(kube_cluster, namespace, f"p{index}", group, [10])

    with ThreadPoolExecutor(31 if stagger else 11) as pool:  # staggered: each pod its own sleeper
        beside = pool.submit(during) if during is not None else None
        list(pool.map(create, range(30)))
        if beside is not None:
            beside.result()
    return settle(lambda: placed(kube_cluster, namespace), 8, 120)


def _metric(extender: ExtenderProcess, pattern: str) -> float:
    with urllib.request.urlopen(f"{extender.url}/metrics", timeout=5) as response:  # noqa: S310 (http on loopback)
        text = response.read().decode()
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def filters_answered(extender: ExtenderProcess) -> float:
    """The filter requests this extender process answered with 200, from its /metrics."""
    return _metric(extender, r'localcsi_extender_requests_total\{code="200",verb="filter"\}')


def reservations_made(extender: ExtenderProcess) -> float:
    """The pods this extender process gave a reservation in filter."""
    return _metric(extender, "localcsi_extender_reservations_total")


def test_thirty_pods_racing_for_room_for_twenty(
    kube_cluster: KubeCluster, scheduler: KubeScheduler, extender: ExtenderProcess
) -> None:
    make_nodes(kube_cluster, "race", {f"race-{i}": 20 for i in range(10)})
    namespace = make_namespace(kube_cluster, "extender-race")
    total = race(kube_cluster, namespace, "race")
    per_node = committed_gib(kube_cluster, namespace)
    assert max(per_node.values()) <= 20, per_node
    assert total == 20, f"{total} placed\n{extender.log()}"
    waiting = [pod_of(c) for c, node in selected_nodes(kube_cluster, namespace).items() if not node]
    assert len(waiting) == 10
    wait_for(
        "FailedScheduling event",
        lambda: scheduling_events(kube_cluster, namespace, waiting[0]),
        60,
        context=extender.log,
    )
    assert any("localcsi: no VG has room" in m for m in scheduling_events(kube_cluster, namespace, waiting[0]))
    # space is freed: a node's agent reports more room, and the node changes (an event the scheduler requeues on)
    add_storage_node(kube_cluster, "race-0", {VG: 60 * GIB}, labels={GROUP_LABEL: "race"})
    core(kube_cluster).patch_node("race-0", {"metadata": {"labels": {"extender-test.localcsi.io/grown": "yes"}}})
    wait_for(
        "4 more pods placed on the grown node",
        lambda: placed(kube_cluster, namespace) == 24,
        90,
        context=extender.log,
    )
    assert committed_gib(kube_cluster, namespace)["race-0"] <= 60


def test_an_extender_restart_during_the_race_over_commits_nothing(
    kube_cluster: KubeCluster, scheduler: KubeScheduler, extender: ExtenderProcess
) -> None:
    make_nodes(kube_cluster, "restart", {f"restart-{i}": 20 for i in range(10)})
    namespace = make_namespace(kube_cluster, "extender-restart")
    replacement = ExtenderProcess(kube_cluster, extender.port)
    at_kill: list[int] = []
    earlier = reservations_made(extender)  # by the module's earlier tests

    def restart() -> None:
        # The race is under way once the extender has reserved room for one of its pods, which is not
        # placed yet: kill it right then.
        wait_for("the race's first reservation", lambda: reservations_made(extender) > earlier, 60, 0.02, extender.log)
        extender.kill()
        at_kill.append(placed(kube_cluster, namespace))
        replacement.start()

    try:
        # Pods keep arriving for 3 s, so a kill at the first reservation lands with the race in flight
        # (created all at once, the 20 that fit were placed within milliseconds of it).
        race(kube_cluster, namespace, "restart", during=restart, stagger=0.1)
        # pods refused while no extender answered wait out kube-scheduler's backoff (up to 10 s)
        wait_for("20 pods placed", lambda: placed(kube_cluster, namespace) >= 20, 90, context=replacement.log)
        total = settle(lambda: placed(kube_cluster, namespace), 8, 60)
    finally:
        if replacement.proc is not None:
            extender.proc = replacement.proc  # the module fixture stops whichever runs now
    per_node = committed_gib(kube_cluster, namespace)
    assert max(per_node.values()) <= 20, per_node
    assert total == 20, f"{total} placed\n{replacement.log()}"
    # the race was in flight at the kill: room reserved, not yet all of the 20 that fit placed ...
    assert at_kill[0] < 20, f"{at_kill[0]} placed when the extender died"
    # ... and the replacement carried it on: pods placed after the kill, through its own filter
    assert total > at_kill[0]
    assert filters_answered(replacement) > 0, replacement.log()
    print(f"\n{at_kill[0]} of 20 placed at the kill, {total} after the restart")


def test_a_missing_storage_class_does_not_block_other_pods(
    kube_cluster: KubeCluster, scheduler: KubeScheduler, extender: ExtenderProcess
) -> None:
    make_nodes(kube_cluster, "lost", {"lost-0": 20})
    namespace = make_namespace(kube_cluster, "extender-lost")
    create_pod(kube_cluster, namespace, "orphan", "lost", [1], storage_class="no-such-class")
    create_pod(kube_cluster, namespace, "ours", "lost", [5])
    api = core(kube_cluster)
    plain = {
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        "nodeSelector": {GROUP_LABEL: "lost"},
    }
    api.create_namespaced_pod(namespace, {"metadata": {"name": "plain"}, "spec": plain})
    wait_for(
        "our pod and a plain pod scheduled",
        lambda: (
            selected_nodes(kube_cluster, namespace).get("ours-0") == "lost-0"
            and api.read_namespaced_pod("plain", namespace).spec.node_name == "lost-0"
        ),
        60,
        context=extender.log,
    )
    assert selected_nodes(kube_cluster, namespace)["orphan-0"] == ""
