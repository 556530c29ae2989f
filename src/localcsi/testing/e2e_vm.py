"""The e2e environment on this machine: the Go-built control plane on the host's loopback, the node VM
as a real node (containerd + kubelet), and localcsi installed with `helm install`, as the docs say.

Order of events in `start()`: image archives and the files disk (cached builds), etcd +
kube-apiserver + kube-controller-manager, kube-scheduler, the VM and its kubelet, the VolumeSnapshot
CRDs, then the chart. Every step prints a phase line with its time.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from kubernetes import client

from localcsi.k8s.rest import KubeApi
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.containerd_store import store_image
from localcsi.testing.e2e_env import CHART, NAMESPACE, RELEASE, container_statuses, write_helm_values
from localcsi.testing.extender import ExtenderProcess
from localcsi.testing.files_disk import make_files_disk
from localcsi.testing.guest_client import Result
from localcsi.testing.images import image_archives
from localcsi.testing.install import project_root
from localcsi.testing.kube_node import KUBELET_PORT, NODE_IP, KubeNode
from localcsi.testing.phases import Phases
from localcsi.testing.scheduler import KubeScheduler
from localcsi.testing.tools import tool_path
from localcsi.testing.vm import NodeVM, free_port
from localcsi.testing.vm_config import VMConfig
from localcsi.testing.waiting import wait_for

# Blank virtio disks (rotating to the guest): the release's init config makes vdb a VG, offers vdc and
# vdd to Device volumes and makes the mount point on vde. Two SSD disks (sda, sdb) go to Device volumes too.
DATA_DISKS_GIB = [6, 1, 1, 1]
SSD_DISKS_GIB = [1, 1]
NODE_MEMORY_MIB = 3072
# Two vCPUs: the e2e node runs alone on the host, its pods side by side (the node and cluster tiers' VMs
# have one each: vm_config.VMConfig).
NODE_CPUS = 2
POOL_DEVICE = "/dev/vdb"
HDD_DEVICE_DISKS = ("/dev/vdc", "/dev/vdd")
SSD_DEVICE_DISKS = ("/dev/sda", "/dev/sdb")
MOUNT_POINT_DISK = "/dev/vde"
# Guest ports qemu forwards to the host for expose_pod_port, one pod port each (6 are used: the node pod's
# plugin and agent, two CSI controllers, two storage controllers).
POD_PORT_SLOTS = range(19800, 19808)


class VMNodeAccess:
    def __init__(self, vm: NodeVM) -> None:
        self._vm = vm

    def run(self, argv: list[str], timeout: float = 120.0) -> Result:
        return self._vm.run(argv, timeout=timeout)


class VMEnvironment:
    def __init__(self, phases: Phases | None = None) -> None:
        self.phases = phases or Phases(prefix="[e2e]")
        self.workdir = Path(tempfile.mkdtemp(prefix="localcsi-e2e-"))
        self.cluster = KubeCluster(self.phases, real_nodes=True)
        self.scheduler: KubeScheduler | None = None
        self.extender: ExtenderProcess | None = None
        self.vm: NodeVM | None = None
        self.kube_node: KubeNode | None = None
        self._exposed: dict[str, int] = {}  # "pod_ip:port" -> guest slot port

    # -- E2EEnvironment ------------------------------------------------------------------------
    @property
    def api(self) -> client.ApiClient:
        return self.cluster.api_client()

    @property
    def kube_api(self) -> KubeApi:
        return self.cluster.kube_api()

    @property
    def node_names(self) -> list[str]:
        assert self.kube_node is not None
        return [self.kube_node.node_name]

    def node(self, name: str) -> VMNodeAccess:
        assert self.vm is not None and name in self.node_names
        return VMNodeAccess(self.vm)

    @property
    def can_reboot(self) -> bool:
        return True

    @property
    def scheduler_has_extender(self) -> bool:
        return True

    def reboot(self, name: str, cgroup_version: str | None = None) -> None:
        assert self.kube_node is not None and self.vm is not None and name in self.node_names
        if cgroup_version is not None:
            self.vm.config.cgroup_version = cgroup_version
        self.kube_node.reboot()
        self.vm.load_ssd_disks()
        self._exposed.clear()  # a boot loses the DNAT rules

    def expose_pod_port(self, pod_ip: str, port: int) -> None:
        """The pods are not on the host network and the host has no route to the pod subnet, so: a guest
        DNAT rule from a forwarded slot port on the node's address to the pod, and an egress proxy route
        from the pod's address (what the apiserver's proxy dials) to that slot's host port."""
        assert self.vm is not None and self.cluster.egress is not None
        target = f"{pod_ip}:{port}"
        if target in self._exposed:
            return
        free = [slot for slot in POD_PORT_SLOTS if slot not in self._exposed.values()]
        if not free:
            raise RuntimeError(f"all {len(POD_PORT_SLOTS)} pod port slots are taken: {self._exposed}")
        slot = free[0]
        rule = ["-d", f"{NODE_IP}/32", "-p", "tcp", "--dport", str(slot), "-j", "DNAT", "--to-destination", target]
        self.vm.check(["iptables", "-t", "nat", "-A", "PREROUTING", *rule])
        self.cluster.egress.route(target, self.vm.host_port(slot))
        self._exposed[target] = slot

    @property
    def device_disks(self) -> dict[str, str]:
        return {**dict.fromkeys(HDD_DEVICE_DISKS, "hdd"), **dict.fromkeys(SSD_DEVICE_DISKS, "ssd")}

    @property
    def mount_point_disk(self) -> str | None:
        return MOUNT_POINT_DISK

    @property
    def extender_address(self) -> str | None:
        return f"127.0.0.1:{self.extender.port}" if self.extender is not None else None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> VMEnvironment:
        try:
            files_disk, image_store = self._disks()
            self.cluster.start()
            # The extender runs beside kube-scheduler, as in deploy/scheduler's static pod. It can only
            # start once the chart has made its RBAC; until then, `ignorable` lets pods be scheduled.
            extender_port = free_port()
            with self.phases.phase("kube-scheduler"):
                url = f"http://127.0.0.1:{extender_port}"
                self.scheduler = KubeScheduler(self.cluster, extender_url=url, ignorable=True).start()
            config = VMConfig(
                disks_gib=list(DATA_DISKS_GIB),
                ssd_disks_gib=list(SSD_DISKS_GIB),
                memory_mib=NODE_MEMORY_MIB,
                cpus=NODE_CPUS,
                host_loopback=True,
                files_disk=files_disk,
                backed_disks=[image_store],
                port_forwards={KUBELET_PORT: 0, **dict.fromkeys(POD_PORT_SLOTS, 0)},
            )
            self.vm = NodeVM(config, self.phases)
            self.vm.start()
            self.vm.load_ssd_disks()
            self.kube_node = KubeNode(self.vm, self.cluster).start()
            with self.phases.phase("helm install"):
                self._install_snapshot_crds()
                values = write_helm_values(POOL_DEVICE, self.workdir / "values.yaml", list(self.device_disks),
                                           MOUNT_POINT_DISK)  # fmt: skip
                self.helm("install", RELEASE, str(project_root() / CHART), "--namespace", NAMESPACE,
                          "--create-namespace", "--values", str(values))  # fmt: skip
            with self.phases.phase("localcsi pods Ready"):
                # 254 s and about 300 s measured on 1.34 with two other VMs running (docs/testing.md).
                wait_for("every localcsi pod Ready", self._all_pods_ready, 900, 2.0, self._pod_report)
            with self.phases.phase("extender"):
                self.extender = ExtenderProcess(self.cluster, extender_port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything; a second call does nothing (the e2e fixtures stop early, then at teardown)."""
        vm, scheduler, extender = self.vm, self.scheduler, self.extender
        self.vm = self.scheduler = self.extender = None
        if vm is not None:
            vm.stop()
        if scheduler is not None:
            scheduler.stop()
        if extender is not None:
            extender.stop()
        self.cluster.stop()

    def helm(self, *args: str) -> str:
        kubeconfig = str(self.cluster.kubeconfig())
        argv = [str(tool_path("helm")), "--kubeconfig", kubeconfig, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    # -- internals -----------------------------------------------------------------------------
    def _disks(self) -> tuple[Path, Path]:
        """The files disk (the kubelet) and containerd's image store, built or taken from the cache."""
        with self.phases.phase("image archives"):
            archives = image_archives()
        with self.phases.phase("containerd image store"):
            image_store = store_image(archives)
        with self.phases.phase("files disk"):
            sources = {"kubelet": tool_path("kubelet")}
            files_disk = make_files_disk(self.workdir / "files.img", sources, self.workdir / "files")
        return files_disk, image_store

    def _install_snapshot_crds(self) -> None:
        from localcsi.testing.snapshot_crds import snapshot_crd_paths  # noqa: PLC0415

        self.cluster.install_crds(paths=snapshot_crd_paths())

    def _pods(self) -> list[client.V1Pod]:
        core = client.CoreV1Api(self.api)
        return list(core.list_namespaced_pod(NAMESPACE).items)

    def _all_pods_ready(self) -> bool:
        pods = self._pods()
        return bool(pods) and all(_ready(pod) for pod in pods)

    def _pod_report(self) -> str:
        lines = [f"{pod.metadata.name}: {pod.status.phase} {_container_states(pod)}" for pod in self._pods()]
        assert self.kube_node is not None
        return "\n".join(lines) + "\n--- kubelet log tail:\n" + self.kube_node.kubelet_log(3000)


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _container_states(pod: client.V1Pod) -> str:
    states = []
    for status in container_statuses(pod):
        state = status.state
        if state.waiting is not None:
            states.append(f"{status.name}=waiting({state.waiting.reason}: {state.waiting.message or ''})")
        elif state.terminated is not None:
            states.append(f"{status.name}=terminated({state.terminated.reason}, rc {state.terminated.exit_code})")
        else:
            states.append(f"{status.name}=running(restarts {status.restart_count})")
    return ", ".join(states)
