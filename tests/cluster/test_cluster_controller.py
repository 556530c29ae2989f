"""`localcsi controller` against a real kube-apiserver and etcd, as the controller's service account.

Nodes are plain v1 Node objects (no kubelet needed). The controller runs as real processes; the
leader-election test kills the leader with SIGKILL and measures how long the other takes to act.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

from localcsi.cli import COMMAND_RUNNERS
from localcsi.k8s.resources import NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG, CustomResources
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.cluster_access import SYSTEM_NAMESPACE

Object = dict[str, Any]
T = TypeVar("T")

CONTROLLER_USER = "system:serviceaccount:localcsi-system:localcsi-controller"
INIT_CONFIG = "localcsi"  # the controller's default --init-config
LEASE_SECONDS = 15.0  # LeaderElector's default lease
RENEW_SECONDS = 5.0
# Until `localcsi controller` is wired in cli.py, run the same parser and runner the CLI would.
_LAUNCH = (
    "import sys; from localcsi import logs; from localcsi.cli import build_parser; "
    "from localcsi.controller.main import run; args = build_parser().parse_args(sys.argv[1:]); "
    "logs.configure(args.log_level, args.log_format); sys.exit(run(args))"
)
GLOBAL = {
    "listConfig": {"vgs": {"include": ["^localcsi-pool-[0-9]+$"]}},
    "resourceToBeInited": {"vgs": [{"name": "localcsi-pool-0", "devices": ["/dev/vdb"]}]},
}
SSD_VGS = [{"name": "localcsi-ssd", "devices": ["/dev/nvme0n1"]}]
ZONE_B_VGS = {"include": ["^zone-b-.+$"]}
RESERVED = [{"vgName": "localcsi-ssd", "percent": 10}]


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> tuple[T, float]:
    """Poll ``probe`` until it returns something truthy; that value and the seconds it took."""
    started = time.monotonic()
    while True:
        value = probe()
        elapsed = time.monotonic() - started
        if value:
            return value, elapsed
        if elapsed > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class ControllerProcess:
    def __init__(self, cluster: KubeCluster, workdir: Path, name: str, lease_name: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        kubeconfig = cluster.kubeconfig(CONTROLLER_USER)
        flags = ["--log-format", "json", "--log-level", "info", "controller", "--kubeconfig", str(kubeconfig)]
        flags += ["--lease-namespace", SYSTEM_NAMESPACE, "--lease-name", lease_name]
        if COMMAND_RUNNERS.get("controller"):
            argv = [sys.executable, "-m", "localcsi", *flags]
        else:
            argv = [sys.executable, "-c", _LAUNCH, *flags]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def records(self) -> list[Object]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def identity(self) -> str | None:
        return next((r.get("identity") for r in self.records() if r.get("msg") == "controller starting"), None)

    def writes(self) -> list[str]:
        return [
            r["msg"] for r in self.records() if r.get("logger") == "localcsi.controller.reconciler" and "action" in r
        ]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


class Fixture:
    def __init__(self, cluster: KubeCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        api = cluster.api_client()
        self.core = client.CoreV1Api(api)
        self.leases = client.CoordinationV1Api(api)
        self.storages = CustomResources(cluster.kube_api(), NODE_LOCAL_STORAGE)
        self.configs = CustomResources(cluster.kube_api(), NODE_LOCAL_STORAGE_INIT_CONFIG)
        self.prefix = f"ctl-{uuid.uuid4().hex[:6]}"
        self.lease_name = f"localcsi-controller-{self.prefix}"
        self.nodes: list[str] = []
        self.processes: list[ControllerProcess] = []
        self.storages_before = {item["metadata"]["name"] for item in self.storages.list()[0]}

    def add_node(self, suffix: str, **labels: str) -> str:
        name = f"{self.prefix}-{suffix}"
        self.core.create_node({"metadata": {"name": name, "labels": labels}})
        self.nodes.append(name)
        return name

    def delete_node(self, name: str) -> None:
        self.core.delete_node(name)
        self.nodes.remove(name)

    def apply_config(self, spec: Object) -> None:
        existing = self.configs.get(INIT_CONFIG)
        if existing is None:
            self.configs.create({"metadata": {"name": INIT_CONFIG}, "spec": spec})
        else:
            self.configs.replace({**existing, "spec": spec})

    def start_controller(self, name: str) -> ControllerProcess:
        process = ControllerProcess(self.cluster, self.workdir, name, self.lease_name)
        self.processes.append(process)
        return process

    def lease_spec(self) -> Object:
        try:
            lease = self.leases.read_namespaced_lease(self.lease_name, SYSTEM_NAMESPACE)
        except client.ApiException as error:
            if error.status == 404:
                return {}
            raise
        return dict(lease.spec.to_dict())

    def storage(self, node: str) -> Object | None:
        return self.storages.get(node)

    def cleanup(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.stop(signal.SIGKILL)
        for name in list(self.nodes):
            self.delete_node(name)
        if self.configs.get(INIT_CONFIG) is not None:
            self.configs.delete(INIT_CONFIG)
        for item in self.storages.list()[0]:
            if item["metadata"]["name"] not in self.storages_before:
                self.storages.delete(item["metadata"]["name"])


@pytest.fixture
def world(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[Fixture]:
    fixture = Fixture(kube_cluster, tmp_path)
    try:
        yield fixture
    finally:
        fixture.cleanup()


def expected_spec(node: str, **sections: object) -> Object:
    spec: Object = copy.deepcopy(GLOBAL)
    spec["nodeName"] = node
    for key, value in sections.items():
        if key in ("devices", "vgs", "mountPoints") and isinstance(value, dict):
            spec["listConfig"] = {**spec["listConfig"], key: value}
        elif key == "init_vgs":
            spec["resourceToBeInited"] = {**spec["resourceToBeInited"], "vgs": value}
        else:
            spec[key] = value
    return spec


def specs_match(world: Fixture, expected: dict[str, Object]) -> bool:
    for node, spec in expected.items():
        stored = world.storage(node)
        if stored is None or stored.get("spec") != spec:
            return False
    return True


def init_spec() -> Object:
    return {
        "globalConfig": copy.deepcopy(GLOBAL),
        "nodesConfig": [
            {"selector": {"matchLabels": {"example.com/disk": "ssd"}}, "resourceToBeInited": {"vgs": SSD_VGS}},
            {
                "selector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                "listConfig": {"vgs": ZONE_B_VGS},
                "reservedSpace": RESERVED,
            },
        ],
    }


def test_one_storage_per_node_follows_nodes_and_config(world: Fixture) -> None:
    ssd = world.add_node("ssd", **{"example.com/disk": "ssd"})
    both = world.add_node("both", **{"example.com/disk": "ssd", "zone": "b"})
    zone_b = world.add_node("zone-b", zone="b")
    zone_a = world.add_node("zone-a", zone="a")
    plain = world.add_node("plain")
    world.apply_config(init_spec())
    controller = world.start_controller("controller")
    expected = {
        ssd: expected_spec(ssd, init_vgs=SSD_VGS),
        both: expected_spec(both, init_vgs=SSD_VGS, vgs=ZONE_B_VGS, reservedSpace=RESERVED),
        zone_b: expected_spec(zone_b, vgs=ZONE_B_VGS, reservedSpace=RESERVED),
        zone_a: expected_spec(zone_a),
        plain: expected_spec(plain),
    }
    _, took = wait_until("a NodeLocalStorage per node", lambda: specs_match(world, expected), 60)
    print(f"\n[controller] 5 NodeLocalStorages written {took:.1f}s after start")
    every_node = {node.metadata.name for node in world.core.list_node().items}
    assert every_node <= {item["metadata"]["name"] for item in world.storages.list()[0]}
    stored = world.storage(plain)
    assert stored is not None
    meta = stored["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "localcsi-controller"
    node_uid = world.core.read_node(plain).metadata.uid
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": plain, "uid": node_uid}]

    def config_status() -> Object | None:
        config = world.configs.get(INIT_CONFIG) or {}
        status = config.get("status") or {}
        return status if status.get("nodes", 0) >= len(expected) else None

    status, _ = wait_until("the init config's status", config_status, 30)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Synced")

    # A new node gets its resource.
    started = time.monotonic()
    late = world.add_node("late", zone="b")
    wait_until(
        "the new node's resource",
        lambda: specs_match(world, {late: expected_spec(late, vgs=ZONE_B_VGS, reservedSpace=RESERVED)}),
        30,
    )
    print(f"[controller] new node -> NodeLocalStorage in {time.monotonic() - started:.2f}s")

    # The agent's status survives a config edit; every spec follows the edit.
    agent_status = {"nodeStorageInfo": {"volumeGroups": [{"name": "localcsi-pool-0", "total": 1073741824}]}}
    world.storages.patch_status(plain, agent_status)
    edited = init_spec()
    edited["globalConfig"]["listConfig"]["vgs"] = {"include": ["^edited-[0-9]+$"]}
    world.apply_config(edited)
    edited_vgs = {"include": ["^edited-[0-9]+$"]}
    expected_after = {
        plain: {**expected_spec(plain), "listConfig": {"vgs": edited_vgs}},
        ssd: {**expected_spec(ssd, init_vgs=SSD_VGS), "listConfig": {"vgs": edited_vgs}},
        zone_b: expected_spec(zone_b, vgs=ZONE_B_VGS, reservedSpace=RESERVED),  # its own vgs still win
    }
    wait_until("specs updated from the edited config", lambda: specs_match(world, expected_after), 30)
    stored = world.storage(plain)
    assert stored is not None and stored.get("status") == agent_status

    # A deleted node loses its resource (no garbage collector runs in this cluster: the controller does it).
    started = time.monotonic()
    world.delete_node(zone_a)
    wait_until("the deleted node's resource to go", lambda: world.storage(zone_a) is None, 30)
    print(f"[controller] deleted node -> NodeLocalStorage gone in {time.monotonic() - started:.2f}s")
    assert world.storage(plain) is not None

    assert controller.stop(signal.SIGTERM) == 0, controller.log_text()
    assert world.lease_spec().get("holder_identity") == "", "a clean shutdown releases the Lease"


def test_two_controllers_only_the_leader_acts_and_the_other_takes_over(world: Fixture) -> None:
    first = world.add_node("first")
    world.apply_config(init_spec())
    a = world.start_controller("a")
    wait_until("a to create the first resource", lambda: world.storage(first), 60)
    b = world.start_controller("b")
    wait_until("b to start", b.identity, 30)
    a_id, b_id = a.identity(), b.identity()
    assert a_id and b_id and a_id != b_id
    assert world.lease_spec()["holder_identity"] == a_id

    # Both watch; only the leader writes.
    second = world.add_node("second", zone="b")
    wait_until("the leader to serve a new node", lambda: world.storage(second), 30)
    time.sleep(RENEW_SECONDS)  # give the follower every chance to misbehave
    assert any(second in line for line in a.writes())
    assert b.writes() == [], f"the follower wrote:\n{b.log_text()}"
    assert not any(r.get("msg") == "became leader" for r in b.records())
    transitions = world.lease_spec()["lease_transitions"]

    # SIGKILL the leader (no release), then change something only the new leader can handle.
    a.stop(signal.SIGKILL)
    killed = time.monotonic()
    third = world.add_node("third")
    _, took_lease = wait_until("b to take the Lease", lambda: world.lease_spec().get("holder_identity") == b_id, 40)
    wait_until("b to serve the node added after the kill", lambda: world.storage(third), 30)
    reconciled = time.monotonic() - killed
    print(
        f"\n[controller] SIGKILL failover: Lease taken after {took_lease:.1f}s, change reconciled after "
        f"{reconciled:.1f}s (lease {LEASE_SECONDS:.0f}s)"
    )
    # b waited for the lease to run out (a renewed at most RENEW_SECONDS before the kill), and no longer.
    assert took_lease >= LEASE_SECONDS - RENEW_SECONDS - 1
    assert reconciled <= LEASE_SECONDS + 5
    assert world.lease_spec()["lease_transitions"] == transitions + 1
    assert any(third in line for line in b.writes())

    # A clean shutdown hands over at once: start c, SIGTERM b.
    c = world.start_controller("c")
    wait_until("c to sync", lambda: any(r.get("msg") == "controller starting" for r in c.records()), 30)
    time.sleep(3)  # c's informers sync and it sees the Lease held
    assert b.stop(signal.SIGTERM) == 0, b.log_text()
    stopped = time.monotonic()
    c_id = c.identity()
    wait_until("c to take the released Lease", lambda: world.lease_spec().get("holder_identity") == c_id, 20)
    fourth = world.add_node("fourth")
    wait_until("c to serve a new node", lambda: world.storage(fourth), 20)
    print(f"[controller] SIGTERM handover: c acting {time.monotonic() - stopped:.1f}s after b stopped")
    assert time.monotonic() - stopped < LEASE_SECONDS, "a released Lease is taken without waiting it out"
    assert c.stop(signal.SIGTERM) == 0, c.log_text()
