"""The product's cluster side end to end: the storage controller on the host, `localcsi agent` in the
node VM, the CSI controller in cluster mode, all against the real apiserver and each as its own
service account (so deploy/rbac authorizes every call).

- A NodeLocalStorageInitConfig becomes one NodeLocalStorage per Node object.
- The agent initialises a VG from the blank data disk; the numbers in its status equal `vgs`.
- The data disk that holds an ext4 filesystem is left untouched (same blkid view, no PV) and the
  refusal is reported in a condition and a Warning Event.
- The agent's cycles run a constant 3 commands (lsblk, findmnt, one lvm fullreport).
- CreateVolume in cluster mode makes a LogicalVolume, which the real agent turns into an LV in the
  VG it created; DeleteVolume removes both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from localcsi.core.names import volume_lv_name
from localcsi.csi import csi_pb2
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG, CustomResources
from localcsi.testing.cluster import KubeCluster, cluster_mode_controller
from localcsi.testing.csi_requests import MIB, create_volume
from localcsi.testing.guest_agent import GuestAgent
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig
from localcsi.testing.waiting import wait_for

NODE = "agent-node-1"
OTHER_NODES = ("agent-node-2", "agent-node-3")  # Node objects with no agent: they still get a NodeLocalStorage
POOL = "localcsi-pool-0"
REFUSED_POOL = "localcsi-pool-1"


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[4, 2], host_loopback=True)


@pytest.fixture(scope="module")
def disks(installed_vm: NodeVM) -> dict[str, Any]:
    """/dev/vdb blank; /dev/vdc with an ext4 filesystem and a file on it, as a disk in use would be."""
    vm = installed_vm
    blank, used = vm.data_disks()[:2]
    vm.check(["mkfs.ext4", "-q", "-L", "precious", used])
    return {"blank": blank, "used": used, "used_blkid": vm.check(["blkid", "-p", "-o", "export", used]).stdout}


@pytest.fixture(scope="module")
def storage_controller(kube_cluster: KubeCluster) -> Iterator[subprocess.Popen[bytes]]:
    for node in OTHER_NODES:
        kube_cluster.add_node(node)
    kube_cluster.add_node(NODE)
    log = (kube_cluster.workdir / "storage-controller.log").open("ab")
    argv = [sys.executable, "-m", "localcsi", "--log-format", "text", "controller", "--resync-seconds", "5",
            "--kubeconfig", str(kube_cluster.kubeconfig("localcsi-controller"))]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
    # Leave the session's cluster as this module found it: other modules use these names too.
    storages = CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE)
    CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE_INIT_CONFIG).delete("localcsi")
    for node in (NODE, *OTHER_NODES):
        kube_cluster.delete_node(node)
        storages.delete(node)


@pytest.fixture(scope="module")
def init_config(kube_cluster: KubeCluster, disks: dict[str, Any], storage_controller: Any) -> dict[str, Any]:
    configs = CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE_INIT_CONFIG)
    spec = {
        "globalConfig": {
            "listConfig": {"vgs": {"include": ["^localcsi-.+$"]}},
            "resourceToBeInited": {
                "vgs": [
                    {"name": POOL, "devices": [disks["blank"]]},
                    {"name": REFUSED_POOL, "devices": [disks["used"]]},
                ]
            },
        }
    }
    return configs.create({"metadata": {"name": "localcsi"}, "spec": spec})


@pytest.fixture(scope="module")
def agent(installed_vm: NodeVM, kube_cluster: KubeCluster, init_config: Any) -> Iterator[GuestAgent]:
    guest = GuestAgent(installed_vm, kube_cluster, node_name=NODE, extra_args=("--resync-seconds", "3")).start()
    yield guest
    if guest.pid is not None:
        guest.stop()


def storage(kube_cluster: KubeCluster, name: str) -> dict[str, Any] | None:
    return CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE).get(name)


def pool_status(kube_cluster: KubeCluster) -> dict[str, Any] | None:
    status = (storage(kube_cluster, NODE) or {}).get("status") or {}
    groups = (status.get("nodeStorageInfo") or {}).get("volumeGroups") or []
    return next((vg for vg in groups if vg["name"] == POOL), None)


def test_every_node_gets_a_node_local_storage_from_the_init_config(
    kube_cluster: KubeCluster, init_config: dict[str, Any]
) -> None:
    for node in (NODE, *OTHER_NODES):

        def made_for(node: str = node) -> dict[str, Any] | None:
            return storage(kube_cluster, node)

        made = wait_for(f"NodeLocalStorage {node}", made_for, timeout=60)
        assert made["spec"]["nodeName"] == node
        assert made["spec"]["resourceToBeInited"] == init_config["spec"]["globalConfig"]["resourceToBeInited"]


def test_the_agent_initialises_the_blank_disk_and_reports_what_vgs_says(
    kube_cluster: KubeCluster, agent: GuestAgent, disks: dict[str, Any]
) -> None:
    group = wait_for("the agent to report the new VG", lambda: pool_status(kube_cluster))
    report = agent.vm.check(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                             "-o", "vg_name,vg_size,vg_free,vg_tags,pv_name", POOL]).json()  # fmt: skip
    [row] = report["report"][0]["vg"]
    assert row["vg_tags"] == "localcsi.io"
    assert group["total"] == int(row["vg_size"])
    assert group["available"] == int(row["vg_free"])
    assert group["allocatable"] == int(row["vg_free"])  # no reservation configured
    assert group["physicalVolumes"] == [disks["blank"]]
    status = (storage(kube_cluster, NODE) or {})["status"]
    assert POOL in status["filteredStorageInfo"]["volumeGroups"]


def test_the_disk_with_a_filesystem_is_untouched_and_reported(
    kube_cluster: KubeCluster, agent: GuestAgent, disks: dict[str, Any]
) -> None:
    wait_for("the agent to report the new VG", lambda: pool_status(kube_cluster))
    used = disks["used"]
    assert agent.vm.check(["blkid", "-p", "-o", "export", used]).stdout == disks["used_blkid"]
    pvs = agent.vm.check(["pvs", "--reportformat", "json", "-o", "pv_name"]).json()["report"][0]["pv"]
    assert used not in [row["pv_name"] for row in pvs]
    conditions = {c["type"]: c for c in (storage(kube_cluster, NODE) or {})["status"]["conditions"]}
    refused = conditions["VolumeGroupsInitialized"]
    assert refused["status"] == "False"
    assert used in refused["message"] and "ext4" in refused["message"]
    events = client.CoreV1Api(kube_cluster.api_client()).list_namespaced_event("default").items
    warnings = [e for e in events if e.reason == "DeviceRefused" and e.involved_object.name == NODE]
    assert warnings and used in warnings[0].message and warnings[0].type == "Warning"


def test_agent_cycles_run_a_constant_three_commands(kube_cluster: KubeCluster, agent: GuestAgent) -> None:
    wait_for("the agent to report the new VG", lambda: pool_status(kube_cluster))

    def steady_cycles() -> list[dict[str, Any]] | None:
        lines = [json.loads(line) for line in agent.logs(200_000).splitlines() if line.startswith("{")]
        cycles = [line for line in lines if line.get("msg") == "cycle done"]
        return cycles[-3:] if len(cycles) >= 4 else None

    cycles = wait_for("a few agent cycles", steady_cycles, timeout=60)
    # the refused disk adds its own probe (stat, blkid) each cycle: 3 discovery commands + 2
    assert {(c["commands"], c["lvm_commands"]) for c in cycles} == {(5, 1)}, cycles
    print(f"\nagent cycle: {cycles[-1]['commands']} commands, {cycles[-1]['lvm_commands']} of them lvm")


@pytest.fixture(scope="module")
def csi_controller(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    socket = tmp_path_factory.mktemp("csi") / "csi.sock"
    with cluster_mode_controller(kube_cluster, socket, operation_timeout=60.0) as stub:
        yield stub


def test_create_volume_lands_in_the_vg_the_agent_created(
    kube_cluster: KubeCluster, agent: GuestAgent, csi_controller: Any
) -> None:
    wait_for("the agent to report the new VG", lambda: pool_status(kube_cluster))
    request = create_volume("pvc-agent", 256 * MIB)
    segment = {"topology.localcsi.io/node": NODE}
    request.accessibility_requirements.requisite.add(segments=segment)
    request.accessibility_requirements.preferred.add(segments=segment)
    volume = csi_controller.CreateVolume(request, timeout=90).volume
    name = volume_lv_name("pvc-agent")
    assert volume.volume_id == f"{NODE}/{POOL}/{name}"
    lvs = agent.vm.check(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                          "-o", "lv_name,lv_size", POOL]).json()["report"][0]["lv"]  # fmt: skip
    assert {row["lv_name"]: int(row["lv_size"]) for row in lvs} == {name: 256 * MIB}
    llv = CustomResources(kube_cluster.kube_api(), LOGICAL_VOLUME).get(name)
    assert llv is not None and llv["status"]["currentSize"] == 256 * MIB

    csi_controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=90)
    assert CustomResources(kube_cluster.kube_api(), LOGICAL_VOLUME).get(name) is None
    lvs = agent.vm.check(["lvs", "--reportformat", "json", "-o", "lv_name", POOL]).json()["report"][0]["lv"]
    assert lvs == []


def test_get_capacity_per_node_and_per_class_follows_the_agents_report(
    kube_cluster: KubeCluster, agent: GuestAgent, csi_controller: Any
) -> None:
    """What the external-provisioner publishes as CSIStorageCapacity, per node and StorageClass."""
    group = wait_for("the agent to report the new VG", lambda: pool_status(kube_cluster))

    def capacity(node: str, parameters: dict[str, str]) -> csi_pb2.GetCapacityResponse:
        topology = csi_pb2.Topology(segments={"topology.localcsi.io/node": node})
        request = csi_pb2.GetCapacityRequest(parameters=parameters, accessible_topology=topology)
        response: csi_pb2.GetCapacityResponse = csi_controller.GetCapacity(request, timeout=30)
        return response

    def settled() -> int | None:
        """The allocatable space, once two reads of the report bracket equal answers.

        The controller's informer and these reads may see consecutive agent reports (the
        previous test's delete lands in a later cycle), so every answer is taken between
        two reads of the same report.
        """
        before = (pool_status(kube_cluster) or group)["allocatable"]
        by_vg = capacity(NODE, {"vgName": POOL}).available_capacity
        best_fit = capacity(NODE, {}).available_capacity  # best fit over the managed VGs
        after = (pool_status(kube_cluster) or group)["allocatable"]
        return int(before) if before == by_vg == best_fit == after else None

    allocatable = wait_for("GetCapacity to equal the allocatable space the agent reports", settled, timeout=30)
    linear = capacity(NODE, {"vgName": POOL})
    assert 0 < linear.maximum_volume_size.value <= allocatable
    assert capacity(NODE, {"vgName": POOL, "lvmType": "thin", "thinPool": "pool0"}).available_capacity == 0
    assert capacity(OTHER_NODES[0], {"vgName": POOL}).available_capacity == 0  # no agent, no storage
