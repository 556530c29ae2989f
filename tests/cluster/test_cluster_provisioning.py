"""Cluster-mode provisioning end to end: the CSI controller on the host, the agent in the node VM.

The host runs the plugin's Controller service in cluster mode (a real gRPC server, ControllerDriver on
ClusterBackend, as the localcsi-csi-controller service account). It only writes LogicalVolumes;
`localcsi agent` in the VM (as the localcsi-agent service account, through the VM's route to the host
apiserver) makes the LVs with real lvm2 in its LogicalVolume reconciler. Checked: a create makes one
resource and one LV of the size lvs reports, a delete removes both, a kill -9 of the agent during a restore's block copy
converges to exactly one finished LV, and a create while the agent is down is DEADLINE_EXCEEDED
until the agent is back, when the retry finishes the same resource.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from localcsi.core.names import volume_lv_name
from localcsi.csi import csi_pb2
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources
from localcsi.testing.cluster import KubeCluster, cluster_mode_controller
from localcsi.testing.csi_requests import MIB, block_capability, create_volume, snapshot_source
from localcsi.testing.guest_agent import connect_guest
from localcsi.testing.install import GUEST_LAUNCHER
from localcsi.testing.sidecar_calls import call_retrying
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig
from localcsi.testing.waiting import wait_for

NODE = "node-1"
VG = "localcsi-a"
CREATING = "localcsi.io/state=creating"
TOPOLOGY = csi_pb2.TopologyRequirement(
    requisite=[csi_pb2.Topology(segments={"topology.localcsi.io/node": NODE})],
    preferred=[csi_pb2.Topology(segments={"topology.localcsi.io/node": NODE})],
)
OPERATION_TIMEOUT = 20.0  # the plugin's wait for the agent, below the gRPC deadline the tests use
GUEST_LOG = "/var/log/localcsi-agent-provisioning.log"


class GuestReconciler:
    """`localcsi agent` in the VM (its LogicalVolume reconciler is what these tests exercise), started
    and killed as a process, with the log read from an offset so a restart's lines stand apart."""

    def __init__(self, vm: NodeVM, kubeconfig: str) -> None:
        self.vm = vm
        self.kubeconfig = kubeconfig
        self.pid: int | None = None

    def start(self) -> None:
        offset = self._log_size()
        argv = [GUEST_LAUNCHER, "--log-format", "text", "--log-level", "debug", "agent", "--node-name", NODE,
                "--kubeconfig", self.kubeconfig, "--resync-seconds", "10"]  # fmt: skip
        self.pid = self.vm.guest.spawn(argv, log=GUEST_LOG)
        wait_for("the reconciler to start", lambda: "reconciling LogicalVolumes" in self.logs(offset), 300)

    def _log_size(self) -> int:
        result = self.vm.run(["stat", "-c", "%s", GUEST_LOG])
        return int(result.stdout) if result.rc == 0 else 0

    def kill(self, signum: int = signal.SIGKILL) -> None:
        assert self.pid is not None
        alive, _ = self.vm.guest.signal(self.pid, signum, wait=30)
        assert not alive
        self.pid = None

    def logs(self, offset: int = 0) -> str:
        """The log from byte ``offset`` on."""
        result = self.vm.run(["tail", "-c", f"+{offset + 1}", GUEST_LOG])
        return result.stdout if result.rc == 0 else ""


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[4], host_loopback=True)


@pytest.fixture(scope="module")
def node(installed_vm: NodeVM, kube_cluster: KubeCluster) -> Iterator[NodeVM]:
    """node-1: the Node object, a VG on the VM's data disk, and its NodeLocalStorage status from vgs;
    both removed afterwards."""
    vm = installed_vm
    vm.check(["vgcreate", "-y", VG, vm.data_disks()[0]])
    kube_cluster.add_node(NODE)
    report = vm.check(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                       "-o", "vg_name,vg_size,vg_free,vg_extent_size", VG]).json()  # fmt: skip
    [row] = report["report"][0]["vg"]
    size, free = int(row["vg_size"]), int(row["vg_free"])
    group = {"name": VG, "physicalVolumes": [vm.data_disks()[0]], "total": size, "available": free,
             "allocatable": free, "reserved": 0, "condition": "DiskReady"}  # fmt: skip
    storages = CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE)
    # The agent manages only the VGs its listConfig lets through; its first cycle rewrites this status.
    storages.create({"metadata": {"name": NODE}, "spec": {"nodeName": NODE, "listConfig": {"vgs": {"include": [VG]}}}})
    storages.patch_status(NODE, {"nodeStorageInfo": {"volumeGroups": [group]},
                                 "filteredStorageInfo": {"volumeGroups": [VG]}})  # fmt: skip
    yield vm
    # Leave the session's cluster as this module found it: other modules use these names too.
    storages.delete(NODE)
    kube_cluster.delete_node(NODE)


@pytest.fixture(scope="module")
def agent(node: NodeVM, kube_cluster: KubeCluster) -> Iterator[GuestReconciler]:
    reconciler = GuestReconciler(node, connect_guest(node, kube_cluster, user="localcsi-agent"))
    reconciler.start()
    yield reconciler
    if reconciler.pid is not None:
        reconciler.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def controller(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The plugin's Controller service in cluster mode over a real gRPC socket, as the CSI controller SA."""
    socket = tmp_path_factory.mktemp("csi") / "csi.sock"
    with cluster_mode_controller(kube_cluster, socket, operation_timeout=OPERATION_TIMEOUT) as stub:
        yield stub


@pytest.fixture(scope="module")
def lvs_api(kube_cluster: KubeCluster) -> CustomResources:
    return CustomResources(kube_cluster.kube_api(), LOGICAL_VOLUME)


def guest_lvs(vm: NodeVM) -> dict[str, dict[str, str]]:
    out = vm.check(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                    "-o", "lv_name,lv_size,lv_tags", VG]).json()  # fmt: skip
    return {row["lv_name"]: row for row in out["report"][0]["lv"]}


def create(controller: Any, request: csi_pb2.CreateVolumeRequest, timeout: float = 60) -> csi_pb2.Volume:
    request.accessibility_requirements.CopyFrom(TOPOLOGY)
    response: csi_pb2.CreateVolumeResponse = controller.CreateVolume(request, timeout=timeout)
    return response.volume


def create_retrying(controller: Any, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.Volume:
    """CreateVolume as the external-provisioner calls it: again after each DEADLINE_EXCEEDED (the
    controller gives up waiting after OPERATION_TIMEOUT; a 512 MiB copy under emulation takes longer)."""
    request.accessibility_requirements.CopyFrom(TOPOLOGY)
    response: csi_pb2.CreateVolumeResponse = call_retrying(controller.CreateVolume, request)
    return response.volume


def delete(controller: Any, volume_id: str) -> None:
    call_retrying(controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


def test_create_makes_a_logicalvolume_and_an_lv_and_delete_removes_both(
    controller: Any, agent: GuestReconciler, lvs_api: CustomResources, node: NodeVM
) -> None:
    started = time.monotonic()
    volume = create_retrying(controller, create_volume("pvc-plain", 200 * MIB))
    took = time.monotonic() - started
    name = volume_lv_name("pvc-plain")
    assert volume.volume_id == f"{NODE}/{VG}/{name}"
    assert dict(volume.accessible_topology[0].segments) == {"topology.localcsi.io/node": NODE}
    obj = lvs_api.get(name)
    assert obj is not None
    assert obj["metadata"]["labels"] == {"localcsi.io/node": NODE}
    assert obj["metadata"]["finalizers"] == ["localcsi.io/logicalvolume"]
    assert obj["status"]["phase"] == "Ready" and obj["status"]["volumeId"] == volume.volume_id
    lv = guest_lvs(node)[name]
    assert int(lv["lv_size"]) == obj["status"]["currentSize"] == volume.capacity_bytes == 200 * MIB
    assert CREATING not in lv["lv_tags"]
    print(f"\nCreateVolume through a LogicalVolume: {took:.2f}s")

    listed = controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
    assert volume.volume_id in [entry.volume.volume_id for entry in listed.entries]

    started = time.monotonic()
    delete(controller, volume.volume_id)
    print(f"DeleteVolume (wipe included): {time.monotonic() - started:.2f}s")
    assert lvs_api.get(name) is None
    assert name not in guest_lvs(node)


def test_modify_volume_reaches_the_lv_tags_through_the_agent(
    controller: Any, agent: GuestReconciler, lvs_api: CustomResources, node: NodeVM
) -> None:
    request = create_volume("pvc-limited", 64 * MIB, {"bps": "1Mi"})
    request.mutable_parameters.update({"readIops": "40"})
    volume = create_retrying(controller, request)
    name = volume_lv_name("pvc-limited")
    tags = guest_lvs(node)[name]["lv_tags"].split(",")
    assert {"localcsi.io/bps=1048576", "localcsi.io/readIops=40"} <= set(tags)
    modify = csi_pb2.ControllerModifyVolumeRequest(
        volume_id=volume.volume_id, mutable_parameters={"readIops": "0", "writeBps": "2Mi"}
    )
    call_retrying(controller.ControllerModifyVolume, modify)
    obj = lvs_api.get(name)
    assert obj is not None
    assert obj["spec"]["ioLimits"] == {"bps": "1048576", "readIops": "0", "writeBps": "2097152"}
    tags = guest_lvs(node)[name]["lv_tags"].split(",")
    limits = sorted(tag for tag in tags if tag.split("=")[0].rpartition("/")[2] in ("bps", "readIops", "writeBps"))
    assert limits == ["localcsi.io/bps=1048576", "localcsi.io/readIops=0", "localcsi.io/writeBps=2097152"], (
        "ControllerModifyVolume returned before the agent changed the LV's tags"
    )
    with pytest.raises(grpc.RpcError) as refused:
        controller.ControllerModifyVolume(
            csi_pb2.ControllerModifyVolumeRequest(volume_id=volume.volume_id, mutable_parameters={"vgName": "x"}),
            timeout=30,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    delete(controller, volume.volume_id)


def test_kill_9_of_the_agent_during_a_restore_converges_to_exactly_one_lv(
    controller: Any, agent: GuestReconciler, lvs_api: CustomResources, node: NodeVM
) -> None:
    size = 512 * MIB
    origin = create_retrying(controller, create_volume("pvc-origin", size, capability=block_capability()))
    device = f"/dev/{VG}/{volume_lv_name('pvc-origin')}"
    node.check(["dd", "if=/dev/urandom", f"of={device}", "bs=1M", f"count={size // MIB}", "oflag=direct",
                "status=none"], timeout=600)  # fmt: skip
    snapshot = call_retrying(
        controller.CreateSnapshot, csi_pb2.CreateSnapshotRequest(source_volume_id=origin.volume_id, name="snap-origin")
    ).snapshot
    restored_lv = volume_lv_name("pvc-restored")
    request = create_volume("pvc-restored", size, capability=block_capability(),
                            source=snapshot_source(snapshot.snapshot_id))  # fmt: skip
    with ThreadPoolExecutor(1) as pool:
        first: Future[csi_pb2.Volume] = pool.submit(create, controller, request)
        wait_for("the restore's LV, still being filled", lambda: CREATING in guest_lvs(node).get(restored_lv,
                   {}).get("lv_tags", ""), 300, interval=0.1)  # fmt: skip
        time.sleep(1.5)  # into the copy
        agent.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        half = guest_lvs(node)[restored_lv]
        assert CREATING in half["lv_tags"], "killed mid-copy: the LV is still marked as being filled"
        obj = lvs_api.get(restored_lv)
        assert obj is not None and obj["status"]["phase"] == "Creating"
        agent.start()
        try:
            outcome: csi_pb2.Volume | grpc.RpcError = first.result(timeout=120)
        except grpc.RpcError as error:
            outcome = error
    if isinstance(outcome, grpc.RpcError):
        assert outcome.code() is grpc.StatusCode.DEADLINE_EXCEEDED, outcome.details()
    restored = create_retrying(controller, request)  # the CO's retries
    first_answer = outcome.code().name if isinstance(outcome, grpc.RpcError) else "OK"
    print(f"\nrestore finished {time.monotonic() - killed_at:.1f}s after the kill -9 (first call: {first_answer})")
    assert restored.volume_id == f"{NODE}/{VG}/{restored_lv}"
    if not isinstance(outcome, grpc.RpcError):
        assert outcome.volume_id == restored.volume_id
    lvs = guest_lvs(node)
    assert [name for name in lvs if name == restored_lv] == [restored_lv]
    assert CREATING not in lvs[restored_lv]["lv_tags"]
    assert len([name for name in lvs if name.startswith("csi-")]) == 2, "origin and restored, nothing else"
    restored_device = f"/dev/{VG}/{restored_lv}"
    snap_device = f"/dev/{VG}/{snapshot.snapshot_id.rpartition('/')[2]}"
    node.check(["cmp", "-n", str(size), snap_device, restored_device], timeout=600)

    delete(controller, restored.volume_id)
    call_retrying(controller.DeleteSnapshot, csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
    delete(controller, origin.volume_id)
    assert not [name for name in guest_lvs(node) if name.startswith(("csi-", "snap-"))]


def test_a_create_while_the_agent_is_down_times_out_and_the_retry_finishes_the_same_resource(
    controller: Any, agent: GuestReconciler, lvs_api: CustomResources, node: NodeVM
) -> None:
    agent.kill(signal.SIGKILL)
    name = volume_lv_name("pvc-late")
    request = create_volume("pvc-late", 64 * MIB)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failure:
        create(controller, request)
    waited = time.monotonic() - started
    assert failure.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "Retrying the request waits on the same LogicalVolume" in (failure.value.details() or "")
    assert OPERATION_TIMEOUT <= waited < OPERATION_TIMEOUT + 10
    pending = lvs_api.get(name)
    assert pending is not None and (pending.get("status") or {}).get("phase") in (None, "Pending")
    assert name not in guest_lvs(node)

    agent.start()
    volume = create_retrying(controller, request)
    assert volume.volume_id == f"{NODE}/{VG}/{name}"
    done = lvs_api.get(name)
    assert done is not None and done["metadata"]["uid"] == pending["metadata"]["uid"], "the same resource"
    assert [lv for lv in guest_lvs(node) if lv == name] == [name]
    delete(controller, volume.volume_id)
    assert name not in guest_lvs(node)
