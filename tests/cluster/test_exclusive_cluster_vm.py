"""Device and MountPoint volumes in cluster mode: the CSI controller on the host writes LogicalVolumes,
`localcsi agent` in the node VM carries them out on real disks, within its NodeLocalStorage's listConfig.

Disks: vdb (1 GiB) carries ext4, vdc (1 GiB) and vdd (2 GiB) are blank, all three selected by
listConfig.devices; vde (1 GiB, blank) is not selected. vdf is ext4 mounted at /mnt/mp/a (selected by
listConfig.mountPoints); a smaller tmpfs at /mnt/outside is not selected. The agent must never hand out
vdb, vde or /mnt/outside, must give the smallest blank disk that fits, must leave a deleted volume's
disk reading zeroes, must converge to one pick after a kill -9 between vgcreate and lvcreate, and must
clear a MountPoint volume's mount point on delete.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from localcsi.core.exclusive import DEVICE_VG_PREFIX, MOUNTPOINT_GROUP, OWNER_MARKER, VOLUME_DIR, usable_bytes
from localcsi.core.names import volume_lv_name
from localcsi.csi import csi_pb2
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources
from localcsi.testing import crash_points
from localcsi.testing.cluster import KubeCluster, cluster_mode_controller
from localcsi.testing.csi_requests import GIB, MIB, create_volume
from localcsi.testing.guest_agent import GuestAgent, connect_guest
from localcsi.testing.sidecar_calls import call_retrying
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig
from localcsi.testing.waiting import wait_for

pytestmark = pytest.mark.cluster

NODE = "node-exclusive"
FOREIGN, SMALL, LARGE, NOT_GIVEN, MP_DISK = "/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde", "/dev/vdf"
MOUNT_POINT, OUTSIDE = "/mnt/mp/a", "/mnt/outside"
DEVICE = {"volumeType": "Device"}
TOPOLOGY = csi_pb2.TopologyRequirement(
    requisite=[csi_pb2.Topology(segments={"topology.localcsi.io/node": NODE})],
    preferred=[csi_pb2.Topology(segments={"topology.localcsi.io/node": NODE})],
)
OPERATION_TIMEOUT = 30.0
LOG = "/var/log/localcsi-agent-exclusive.log"


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[1, 1, 2, 1, 1], host_loopback=True)


@pytest.fixture(scope="module")
def node(installed_vm: NodeVM, kube_cluster: KubeCluster) -> Iterator[NodeVM]:
    vm = installed_vm
    vm.check(["mkfs.ext4", "-q", FOREIGN])
    vm.check(["mkfs.ext4", "-q", MP_DISK])
    vm.check(["mkdir", "-p", MOUNT_POINT, OUTSIDE])
    vm.check(["mount", MP_DISK, MOUNT_POINT])
    vm.check(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", OUTSIDE])
    kube_cluster.add_node(NODE)
    storages = CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE)
    listing = {"devices": {"include": ["^/dev/vd[b-d]$"]}, "mountPoints": {"include": ["^/mnt/mp/.*$"]}}
    storages.create({"metadata": {"name": NODE}, "spec": {"nodeName": NODE, "listConfig": listing}})
    yield vm
    storages.delete(NODE)
    kube_cluster.delete_node(NODE)


class Agent:
    """`localcsi agent` for NODE in the VM, with crash-point stand-ins first on its PATH."""

    def __init__(self, vm: NodeVM, kube_cluster: KubeCluster) -> None:
        connect_guest(vm, kube_cluster)
        self.vm = vm
        self.argv = [*GuestAgent(vm, kube_cluster, NODE).argv(), "--resync-seconds", "10"]
        self.env = crash_points.install(vm, ("lvcreate",))
        self.pid: int | None = None

    def start(self) -> None:
        offset = self._size()
        self.pid = self.vm.guest.spawn(self.argv, log=LOG, env=self.env)
        wait_for("the reconciler to start", lambda: "reconciling LogicalVolumes" in self.logs(offset), 300)

    def _size(self) -> int:
        result = self.vm.run(["stat", "-c", "%s", LOG])
        return int(result.stdout) if result.rc == 0 else 0

    def logs(self, offset: int = 0) -> str:
        result = self.vm.run(["tail", "-c", f"+{offset + 1}", LOG])
        return result.stdout if result.rc == 0 else ""

    def alive(self) -> bool:
        return self.pid is not None and self.vm.guest.signal(self.pid, 0)[0]

    def stop(self) -> None:
        if self.pid is not None:
            self.vm.guest.signal(self.pid, signal.SIGTERM, wait=30)
            self.pid = None


@pytest.fixture(scope="module")
def agent(node: NodeVM, kube_cluster: KubeCluster) -> Iterator[Agent]:
    started = Agent(node, kube_cluster)
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def controller(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    socket = tmp_path_factory.mktemp("csi") / "csi.sock"
    with cluster_mode_controller(kube_cluster, socket, operation_timeout=OPERATION_TIMEOUT) as stub:
        yield stub


@pytest.fixture(scope="module")
def lvs_api(kube_cluster: KubeCluster) -> CustomResources:
    return CustomResources(kube_cluster.kube_api(), LOGICAL_VOLUME)


def create(controller: Any, name: str, size: int, parameters: dict[str, str]) -> csi_pb2.Volume:
    return create_retrying(controller, create_volume(name, size, parameters))


def create_retrying(controller: Any, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.Volume:
    """As the external-provisioner does: again while the first call still waits (ABORTED) or timed out."""
    request.accessibility_requirements.CopyFrom(TOPOLOGY)
    response: csi_pb2.CreateVolumeResponse = call_retrying(controller.CreateVolume, request)
    return response.volume


def delete(controller: Any, volume_id: str) -> None:
    call_retrying(controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


def disk_of(vm: NodeVM, vg: str) -> str:
    return vm.check(["pvs", "--noheadings", "-o", "pv_name", "--select", f"vg_name={vg}"]).stdout.strip()


def device_vgs(vm: NodeVM) -> list[str]:
    out = vm.check(["vgs", "--noheadings", "-o", "vg_name"]).stdout.split()
    return [vg for vg in out if vg.startswith(DEVICE_VG_PREFIX)]


def blkid(vm: NodeVM, device: str, tag: str = "TYPE") -> str:
    return vm.run(["blkid", "-p", "-o", "value", "-s", tag, device]).stdout.strip()


def test_device_volumes_take_the_smallest_blank_disk_given_and_leave_it_zeroed(
    controller: Any, agent: Agent, lvs_api: CustomResources, node: NodeVM
) -> None:
    vm = node
    foreign_uuid = blkid(vm, FOREIGN, "UUID")
    started = time.monotonic()
    small = create(controller, "dev-small", 512 * MIB, DEVICE)
    print(f"\nDevice CreateVolume through a LogicalVolume: {time.monotonic() - started:.2f}s")
    _, vg, lv = small.volume_id.split("/")
    assert small.volume_id == f"{NODE}/{vg}/{volume_lv_name('dev-small')}" and vg.startswith(DEVICE_VG_PREFIX)
    assert disk_of(vm, vg) == SMALL, "not the smallest blank disk that fits"
    assert small.capacity_bytes == usable_bytes(GIB)
    obj = lvs_api.get(lv)
    assert obj is not None and obj["status"]["device"] == SMALL and obj["spec"]["volumeType"] == "Device"

    large = create(controller, "dev-large", 1536 * MIB, DEVICE)
    assert disk_of(vm, large.volume_id.split("/")[1]) == LARGE
    with pytest.raises(grpc.RpcError) as exhausted:
        create(controller, "dev-none", 16 * MIB, DEVICE)
    assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "ext4" in (exhausted.value.details() or ""), "the refusal should say why the ext4 disk is not free"
    assert lvs_api.get(volume_lv_name("dev-none")) is None, "the failed resource is removed"
    assert blkid(vm, FOREIGN) == "ext4" and blkid(vm, FOREIGN, "UUID") == foreign_uuid
    assert blkid(vm, NOT_GIVEN) == "" and vm.run(["pvs", NOT_GIVEN]).rc != 0, "a disk not given was touched"

    vm.check(["dd", "if=/dev/urandom", f"of=/dev/{vg}/{lv}", "bs=1M", "count=16", "oflag=direct", "status=none"])
    started = time.monotonic()
    delete(controller, small.volume_id)
    print(f"Device DeleteVolume (wipe, pvremove, wipefs): {time.monotonic() - started:.2f}s")
    assert lvs_api.get(lv) is None and vg not in device_vgs(vm)
    assert blkid(vm, SMALL) == "" and vm.run(["pvs", SMALL]).rc != 0
    assert vm.run(["cmp", "-n", str(GIB), SMALL, "/dev/zero"]).rc == 0, "the deleted disk does not read zeroes"
    delete(controller, large.volume_id)
    assert device_vgs(vm) == []


def test_a_kill_9_between_vgcreate_and_lvcreate_converges_to_the_first_pick(
    controller: Any, agent: Agent, lvs_api: CustomResources, node: NodeVM
) -> None:
    vm = node
    crash_points.arm(vm, "lvcreate")
    request = create_volume("dev-crash", 16 * MIB, DEVICE)
    request.accessibility_requirements.CopyFrom(TOPOLOGY)
    with pytest.raises(grpc.RpcError) as late:
        controller.CreateVolume(request, timeout=10)  # the controller goes on waiting for the agent
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for("the agent to die at lvcreate", lambda: not agent.alive(), 300)
    assert not crash_points.is_armed(vm, "lvcreate")
    [vg] = device_vgs(vm)
    taken = disk_of(vm, vg)
    assert taken == SMALL and vm.check(["lvs", "--noheadings", vg]).stdout.strip() == "", "killed before lvcreate"

    agent.start()
    volume = create_retrying(controller, request)
    assert volume.volume_id.split("/")[1] == vg and device_vgs(vm) == [vg] and disk_of(vm, vg) == taken
    delete(controller, volume.volume_id)
    assert device_vgs(vm) == [] and blkid(vm, SMALL) == ""


def test_a_mountpoint_volume_takes_a_selected_mount_point_and_delete_clears_it(
    controller: Any, agent: Agent, lvs_api: CustomResources, node: NodeVM
) -> None:
    vm = node
    volume = create(controller, "mp-1", 16 * MIB, {"volumeType": "MountPoint"})
    lv = volume_lv_name("mp-1")
    assert volume.volume_id == f"{NODE}/{MOUNTPOINT_GROUP}/{lv}"
    obj = lvs_api.get(lv)
    assert obj is not None and obj["status"]["mountPoint"] == MOUNT_POINT, "not the mount point listConfig gives"
    assert volume.capacity_bytes == obj["status"]["currentSize"] > 64 * MIB
    marker = vm.check(["cat", f"{MOUNT_POINT}/{OWNER_MARKER}"]).stdout
    assert f"localcsi.io/lv={lv}" in marker
    assert vm.check(["ls", "-A", OUTSIDE]).stdout == "", "a mount point outside listConfig was touched"
    vm.check(["python3", "-c", f"open('{MOUNT_POINT}/{VOLUME_DIR}/data', 'w').write('pod data')"])

    delete(controller, volume.volume_id)
    assert lvs_api.get(lv) is None
    assert vm.check(["ls", "-A", MOUNT_POINT]).stdout.split() == ["lost+found"]
    assert vm.check(["findmnt", "-n", "-o", "SOURCE", MOUNT_POINT]).stdout.strip() == MP_DISK, "still mounted"
