"""A real Kubernetes node in the node VM: Debian's containerd, runc and CNI plugins, and the kubelet
built from Go modules, joined to the test cluster's control plane on the host.

The VM boots with `host_loopback` (the guest reaches the apiserver at HOST_LOOPBACK), a files disk
that carries the kubelet, and containerd's image store as its first backed disk (containerd_store.py):
the images are imported on the host, where it is six times faster than under TCG.

There is no kube-proxy: the one rule it would write for the `kubernetes` Service (ClusterIP:443 ->
the apiserver) is written here, so pods' in-cluster configuration works unchanged. Everything that
must happen again after a reboot is in `boot()`; the configuration on the root overlay is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client

from localcsi.testing.certs import make_client_cert
from localcsi.testing.cluster import KUBERNETES_SERVICE_IP, KubeCluster
from localcsi.testing.guest_client import GuestError
from localcsi.testing.vm import HOST_LOOPBACK, NodeVM
from localcsi.testing.waiting import wait_for

NODE_NAME = "localcsi-node"  # the guest's hostname (guest/init)
NODE_IP = "10.0.2.15"  # slirp's fixed guest address
# The kubelet's API, forwarded to the host's loopback for the apiserver's egress proxy (logs, exec).
KUBELET_PORT = 10250
POD_SUBNET = "10.244.0.0/24"
FILES_MOUNT = "/mnt/files"
CONTAINERD_ROOT = "/var/lib/containerd"
KUBELET_BINARY = "/usr/local/bin/kubelet"
PKI = "/etc/kubernetes/pki"
KUBELET_KUBECONFIG = "/etc/kubernetes/kubelet.kubeconfig"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CNI_CONFIG = "/etc/cni/net.d/10-localcsi-bridge.conflist"
KERNEL_MODULES = ("overlay", "br_netfilter", "bridge", "veth", "nf_nat", "nf_conntrack")
SYSCTLS = ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
CONTAINERD_LOG = "/var/log/containerd.log"
KUBELET_LOG = "/var/log/kubelet.log"


def containerd_config(sandbox_image: str) -> str:
    # Containerd 1.x has no RuntimeConfig for the kubelet to ask, so the cgroup driver is cgroupfs on
    # both sides; the CNI plugins are where Debian puts them.
    return f"""version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
"""


def cni_config() -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": "localcsi-bridge",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config() -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": f"{PKI}/ca.crt"},
        },
        # Only the apiserver reaches the kubelet (through a forwarded loopback port), with a client
        # certificate of the cluster CA.
        "authorization": {"mode": "AlwaysAllow"},
        "resolvConf": "",
        "serializeImagePulls": False,
        # A running pod's volume is grown on the node (NodeExpandVolume) at the pod's next sync: with the
        # default of 1 m, the e2e expansion tests took 115 to 122 s instead of 34 to 37.
        "syncFrequency": "10s",
        # No eviction: the test node's disks are small (the default thresholds would evict pods before the
        # tests begin), and with no thresholds and no local-storage limits the eviction manager skips its
        # stats collection every 10 s (docs/testing.md).
        "evictionHard": {},
        "localStorageCapacityIsolation": False,
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
    }


@dataclass
class KubeNode:
    vm: NodeVM
    cluster: KubeCluster
    node_name: str = NODE_NAME
    _configured: bool = field(default=False, init=False)

    def start(self, timeout: float = 180) -> KubeNode:
        """Configure the node once, then bring containerd and the kubelet up and wait for Ready."""
        if not self.vm.config.host_loopback:
            raise GuestError("the node VM must boot with VMConfig(host_loopback=True) to reach the apiserver")
        phases = self.vm.phases
        if self.cluster.egress is not None:  # the apiserver names a node by hostname first, then by IP
            for address in (self.node_name, NODE_IP):
                self.cluster.egress.route(f"{address}:{KUBELET_PORT}", self.vm.host_port(KUBELET_PORT))
        if not self._configured:
            with phases.phase("node: configure"):
                self._mount_files()
                self._configure()
            self._configured = True
        self.boot(timeout)
        return self

    def boot(self, timeout: float = 180) -> None:
        """What every boot of the node needs: kernel settings, containerd, the Service rule, the kubelet."""
        phases = self.vm.phases
        with phases.phase("node: kernel and network"):
            self._mount_files()
            for module in KERNEL_MODULES:
                self.vm.check(["modprobe", module])
            for setting in SYSCTLS:
                self.vm.check(["sysctl", "-q", "-w", setting])
            # What systemd does at boot: Bidirectional mount propagation (the node plugin's kubelet
            # directory) is refused on a private mount.
            self.vm.check(["mount", "--make-rshared", "/"])
            self._service_rule()
            self._mount_image_store()
        with phases.phase("node: containerd"):
            self.vm.guest.spawn(["containerd", "--config", CONTAINERD_CONFIG], log=CONTAINERD_LOG)
            wait_for(
                "containerd", lambda: self.vm.run(["ctr", "version"], timeout=10).rc == 0, 60, 0.5, self._containerd_log
            )
        with phases.phase("node: kubelet until Ready"):
            self.vm.guest.spawn(self._kubelet_argv(), log=KUBELET_LOG)
            wait_for(f"Node {self.node_name} Ready", self._ready, timeout, 1.0, self.kubelet_log)

    def reboot(self, timeout: float = 240) -> None:
        self.vm.reboot()
        self.boot(timeout)

    # -- node access ---------------------------------------------------------------------------
    def kubelet_log(self, tail: int = 6000) -> str:
        return self._tail(KUBELET_LOG, tail)

    def _containerd_log(self) -> str:
        return self._tail(CONTAINERD_LOG, 4000)

    def _tail(self, path: str, tail: int) -> str:
        result = self.vm.run(["tail", "-c", str(tail), path])
        return result.stdout if result.rc == 0 else f"(no {path}: {result.stderr.strip()})"

    # -- internals -----------------------------------------------------------------------------
    def _mount_files(self) -> None:
        if self.vm.run(["mountpoint", "-q", FILES_MOUNT]).rc == 0:
            return
        self.vm.check(["mkdir", "-p", FILES_MOUNT])
        self.vm.check(["mount", "-o", "ro", self.vm.files_device(), FILES_MOUNT])

    def _configure(self) -> None:
        from localcsi.testing.tools import PAUSE_IMAGE  # noqa: PLC0415 - the pinned sandbox image

        vm, cluster = self.vm, self.cluster
        kubelet_cert = make_client_cert(
            cluster.certs, f"kubelet-{self.node_name}", f"system:node:{self.node_name}", "system:nodes"
        )
        vm.guest.put(f"{PKI}/ca.crt", cluster.ca_file.read_bytes())
        vm.guest.put(f"{PKI}/kubelet.crt", kubelet_cert.cert.read_bytes())
        vm.guest.put(f"{PKI}/kubelet.key", kubelet_cert.key.read_bytes(), mode=0o600)
        vm.guest.put(KUBELET_KUBECONFIG, yaml.safe_dump(self._kubelet_kubeconfig()).encode(), mode=0o600)
        vm.guest.put(KUBELET_CONFIG, yaml.safe_dump(kubelet_config()).encode())
        vm.guest.put(CONTAINERD_CONFIG, containerd_config(PAUSE_IMAGE).encode())
        vm.guest.put(CNI_CONFIG, json.dumps(cni_config(), indent=2).encode())
        vm.check(["install", "-m", "0755", f"{FILES_MOUNT}/kubelet", KUBELET_BINARY])

    def _kubelet_kubeconfig(self) -> dict[str, Any]:
        server = f"https://{HOST_LOOPBACK}:{self.cluster.port}"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": f"{PKI}/ca.crt"}}],
            "users": [{"name": "kubelet", "user": {"client-certificate": f"{PKI}/kubelet.crt",
                                                   "client-key": f"{PKI}/kubelet.key"}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "kubelet"}}],
            "current-context": "local",
        }  # fmt: skip

    def _kubelet_argv(self) -> list[str]:
        return [
            KUBELET_BINARY,
            f"--config={KUBELET_CONFIG}",
            f"--kubeconfig={KUBELET_KUBECONFIG}",
            f"--hostname-override={self.node_name}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ]

    def _service_rule(self) -> None:
        """kube-proxy's rule for the `kubernetes` Service, for pods (PREROUTING) and host-network
        processes (OUTPUT): ClusterIP:443 -> the apiserver on the host's loopback."""
        target = f"{HOST_LOOPBACK}:{self.cluster.port}"
        for chain in ("PREROUTING", "OUTPUT"):
            rule = ["-d", f"{KUBERNETES_SERVICE_IP}/32", "-p", "tcp", "--dport", "443", "-j", "DNAT",
                    "--to-destination", target]  # fmt: skip
            if self.vm.run(["iptables", "-t", "nat", "-C", chain, *rule]).rc != 0:
                self.vm.check(["iptables", "-t", "nat", "-A", chain, *rule])

    def _mount_image_store(self) -> None:
        if self.vm.run(["mountpoint", "-q", CONTAINERD_ROOT]).rc == 0:
            return
        self.vm.check(["mkdir", "-p", CONTAINERD_ROOT])
        self.vm.check(["mount", self.vm.backed_device(0), CONTAINERD_ROOT])

    def _ready(self) -> bool:
        core = client.CoreV1Api(self.cluster.api_client())
        try:
            node = core.read_node(self.node_name)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return False
            raise
        conditions = node.status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)
