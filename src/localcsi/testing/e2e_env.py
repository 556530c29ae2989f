"""What an e2e test may use, whichever cluster it runs on: the Kubernetes API and a narrow way to
read facts on a node (lvs, findmnt, blkid, cgroup files).

Two environments implement it: the node VM joined to the Go-built control plane (`e2e_vm.py`, this
machine and CI) and kind on GitHub Actions (`e2e/kind_env.py`). Tests take an `E2EEnvironment` and
never learn which one they got, except through `can_reboot` and `extender_address`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client
from kubernetes.utils import parse_quantity

from localcsi import TOPOLOGY_KEY
from localcsi.k8s.rest import KubeApi
from localcsi.testing.guest_client import Result

NAMESPACE = "localcsi-system"
RELEASE = "localcsi"
CHART = Path("deploy") / "helm" / "localcsi"
POOL_VG = "localcsi-pool-0"
# The chart's localcsi-lvm-thin class names this pool. Nothing in localcsi creates thin pools yet: an
# operator makes one with lvcreate, as this harness does on every node.
THIN_POOL = "pool0"
THIN_POOL_SIZE = "2g"


# resourceToBeInited.mountpoints makes MOUNT_POINT on each node's mount point disk; listConfig.mountPoints
# offers what is mounted under MOUNT_POINT_DIR, which the chart shows the node pods (node.mountPointDirs).
MOUNT_POINT_DIR = "/mnt/localcsi"
MOUNT_POINT = f"{MOUNT_POINT_DIR}/mp-0"


def helm_values(
    device: str, exclusive_disks: Sequence[str] = (), mount_point_disk: str | None = None
) -> dict[str, Any]:
    """The release's values beyond the chart's defaults, the same on every e2e environment: the init
    config turns `device` (blank) into POOL_VG on every node, offers `exclusive_disks` to Device volumes
    and makes MOUNT_POINT on `mount_point_disk` for MountPoint volumes. The extender runs beside
    kube-scheduler (deploy/scheduler's layout), not as the chart's Deployment."""
    node_config: dict[str, Any] = {
        "selector": {},
        "resourceToBeInited": {"vgs": [{"name": POOL_VG, "devices": [device]}]},
    }
    if exclusive_disks:
        patterns = [f"^{re.escape(disk)}$" for disk in exclusive_disks]
        node_config.setdefault("listConfig", {})["devices"] = {"include": patterns}
    if mount_point_disk is not None:
        node_config.setdefault("listConfig", {})["mountPoints"] = {"include": [f"^{re.escape(MOUNT_POINT_DIR)}/.+$"]}
        node_config["resourceToBeInited"]["mountpoints"] = [
            {"path": MOUNT_POINT, "device": mount_point_disk, "fsType": "ext4"}
        ]
    return {
        "extender": {"enabled": False},
        # VolumeAttributesClass is GA (storage.k8s.io/v1) on the control plane: IO limits change through classes.
        # One node: a second replica of the leader-elected controllers would only take CPU from the emulated
        # node (the CSI controller's sidecars wait for its plugin, a native sidecar, so one pod is enough
        # after a reboot too). A VG or pool made during the tests reaches CSIStorageCapacity within 10 s.
        "csiController": {"replicas": 1, "volumeAttributesClass": True, "capacityPollInterval": "10s"},
        "controller": {"replicas": 1},
        "snapshotController": {"enabled": True, "replicas": 1},
        # The thin pool, made on the node by ensure_thin_pool as an operator would, shows once the agent
        # rescans: every 20 s rather than 60, a minute less of setup for a cycle's few LVM reports.
        "node": {
            "mountPointDirs": [MOUNT_POINT_DIR] if mount_point_disk is not None else [],
            "agent": {"resyncSeconds": 20},
        },
        "initConfig": {"enabled": True, "nodesConfig": [node_config]},
    }


def write_helm_values(
    device: str, path: Path, exclusive_disks: Sequence[str] = (), mount_point_disk: str | None = None
) -> Path:
    path.write_text(yaml.safe_dump(helm_values(device, exclusive_disks, mount_point_disk)))
    return path


class NodeAccess(Protocol):
    """Runs an argv list as root on one node (never a shell string)."""

    def run(self, argv: list[str], timeout: float = 120.0) -> Result: ...


class E2EEnvironment(Protocol):
    @property
    def api(self) -> client.ApiClient:
        """The official client, for what the tests do themselves."""

    @property
    def kube_api(self) -> KubeApi:
        """localcsi's own client (localcsi.k8s.rest), for handing to localcsi's code."""

    @property
    def node_names(self) -> list[str]: ...

    def node(self, name: str) -> NodeAccess: ...

    @property
    def can_reboot(self) -> bool: ...

    @property
    def scheduler_has_extender(self) -> bool:
        """Whether kube-scheduler asks localcsi's extender (else CSIStorageCapacity alone guides it)."""

    def reboot(self, name: str, cgroup_version: str | None = None) -> None:
        """Power the node off and on again, and return once it is Ready; ``cgroup_version`` ("v1" or
        "v2") boots it with that cgroup hierarchy from then on."""

    def expose_pod_port(self, pod_ip: str, port: int) -> None:
        """Let the apiserver's proxy (``/api/v1/namespaces/NS/pods/POD:PORT/proxy/``) reach ``pod_ip:port``."""

    @property
    def device_disks(self) -> Mapping[str, str]:
        """The disks every node offers to Device volumes, each with the mediaType it reports ("ssd" or
        "hdd"); empty where the environment has none."""

    @property
    def mount_point_disk(self) -> str | None:
        """The disk the init config makes MOUNT_POINT on, or None where the environment has none."""

    @property
    def extender_address(self) -> str | None:
        """host:port of the scheduler extender's HTTP server (its /metrics), reachable from this machine;
        None when the scheduler has no extender."""


def cgroup_version(env: E2EEnvironment, name: str) -> str:
    """The cgroup hierarchy a node runs: "v2" when /sys/fs/cgroup is cgroup2, else "v1"."""
    mounted = env.node(name).run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).check().stdout.strip()
    return "v2" if mounted == "cgroup2fs" else "v1"


def ensure_thin_pool(env: E2EEnvironment) -> None:
    """Make THIN_POOL in POOL_VG on every node that lacks it, as an operator would."""
    for name in env.node_names:
        node = env.node(name)
        if node.run(["lvs", f"{POOL_VG}/{THIN_POOL}"]).rc != 0:
            # --zero y: the driver relies on the pool zeroing newly provisioned blocks (docs/controller.md).
            lvcreate = ["lvcreate", "--yes", "--type", "thin-pool", "--zero", "y", "--size", THIN_POOL_SIZE]
            lvcreate += ["--name", THIN_POOL]
            node.run([*lvcreate, POOL_VG]).check()


def storage_ready(env: E2EEnvironment, storage_class: str = "localcsi-lvm") -> bool:
    """Every node publishes a non-zero CSIStorageCapacity for `storage_class`: the agent made the VG and
    the provisioner has polled GetCapacity since (once a minute by default)."""
    published = {
        (capacity.node_topology.match_labels or {}).get(TOPOLOGY_KEY)
        for capacity in client.StorageV1Api(env.api).list_csi_storage_capacity_for_all_namespaces().items
        if capacity.storage_class_name == storage_class and capacity.node_topology and capacity.capacity
        and parse_quantity(capacity.capacity) > 0
    }  # fmt: skip
    return set(env.node_names) <= published


def container_statuses(pod: Any) -> list[Any]:
    """A pod's init containers' statuses, then its containers': the CSI controller's plugin is an init
    container (a native sidecar)."""
    return [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]


def storage_report(env: E2EEnvironment) -> str:
    """What the nodes report, what the provisioner published and how localcsi's pods fare: the context
    of a storage wait that timed out."""
    custom = client.CustomObjectsApi(env.api)
    lines = []
    for nls in custom.list_cluster_custom_object("localcsi.io", "v1alpha1", "nodelocalstorages")["items"]:
        status = nls.get("status") or {}
        groups = (status.get("nodeStorageInfo") or {}).get("volumeGroups") or []
        conditions = [f"{c['type']}={c['status']} ({c.get('message', '')})" for c in status.get("conditions") or []]
        lines.append(f"NodeLocalStorage {nls['metadata']['name']}: VGs {[g['name'] for g in groups]}; {conditions}")
    for capacity in client.StorageV1Api(env.api).list_csi_storage_capacity_for_all_namespaces().items:
        lines.append(f"CSIStorageCapacity {capacity.storage_class_name}: {capacity.capacity}")
    for pod in client.CoreV1Api(env.api).list_namespaced_pod(NAMESPACE).items:
        restarts = sum(status.restart_count for status in container_statuses(pod))
        lines.append(f"pod {pod.metadata.name}: {pod.status.phase}, {restarts} restart(s)")
    return "\n".join(lines) or "no NodeLocalStorage, no CSIStorageCapacity and no localcsi pod at all"
