"""The e2e environment on a kind cluster (GitHub Actions): the kind-specific part, kept thin.

The cluster, the loop-file disks and the release are made by `setup_kind.py`; the tests are the same
`tests/e2e` the node VM runs. Node facts are read with `docker exec` into the kind node container,
which has the node's lvm2 (installed by setup_kind.py) and the kubelet's directories.
"""

from __future__ import annotations

import os
import subprocess

from kubernetes import client, config

from localcsi.k8s.kubeconfig import load_kubeconfig
from localcsi.k8s.rest import KubeApi
from localcsi.testing.guest_client import Result


class DockerNodeAccess:
    def __init__(self, container: str) -> None:
        self._container = container

    def run(self, argv: list[str], timeout: float = 120.0) -> Result:
        proc = subprocess.run(
            ["docker", "exec", self._container, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )
        return Result(argv=tuple(argv), rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


class KindEnvironment:
    def __init__(self, api: client.ApiClient, kube_api: KubeApi) -> None:
        self._api = api
        self._kube_api = kube_api

    @classmethod
    def from_environment(cls) -> KindEnvironment:
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            raise RuntimeError(
                "LOCALCSI_E2E=kind needs KUBECONFIG pointing at the kind cluster (setup_kind.py writes it)"
            )
        return cls(config.new_client_from_config(config_file=kubeconfig), KubeApi(load_kubeconfig(kubeconfig)))

    @property
    def api(self) -> client.ApiClient:
        return self._api

    @property
    def kube_api(self) -> KubeApi:
        return self._kube_api

    @property
    def node_names(self) -> list[str]:
        return sorted(node.metadata.name for node in client.CoreV1Api(self._api).list_node().items)

    def node(self, name: str) -> DockerNodeAccess:
        return DockerNodeAccess(name)  # kind names each node's container after the node

    @property
    def can_reboot(self) -> bool:
        return False

    @property
    def scheduler_has_extender(self) -> bool:
        return False  # kind's kube-scheduler keeps its own configuration: CSIStorageCapacity only

    def expose_pod_port(self, pod_ip: str, port: int) -> None:
        pass  # kind's apiserver runs on the cluster's network: its proxy reaches every pod

    @property
    def extender_address(self) -> str | None:
        return None

    # The agent offers whole disks and partitions (lsblk TYPE disk or part) to Device volumes, and mount
    # points on them to MountPoint volumes; the runner's disks for kind are loop devices, so neither.
    @property
    def device_disks(self) -> dict[str, str]:
        return {}

    @property
    def mount_point_disk(self) -> str | None:
        return None

    def reboot(self, name: str, cgroup_version: str | None = None) -> None:
        raise NotImplementedError("kind nodes are containers: a reboot is proven on the node VM only")
