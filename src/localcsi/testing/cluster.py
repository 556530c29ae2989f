"""A real Kubernetes control plane on loopback for the cluster tier: etcd and kube-apiserver built from
Go modules (see tools.py), generated certificates, static tokens, RBAC, our CRDs and RBAC installed.

Users authenticate with bearer tokens from a token file. `admin` is in system:masters; the service
accounts of deploy/rbac are plain token users with their service-account names, so the shipped
ClusterRoles are what authorizes the agent, the controller, the CSI controller and the extender.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import yaml
from kubernetes import client, utils

from localcsi.csi import services
from localcsi.plugin.config import Mode, PluginConfig
from localcsi.plugin.server import build_server
from localcsi.testing.certs import make_certs, make_client_cert
from localcsi.testing.cluster_access import ADMIN, ClusterAccess
from localcsi.testing.egress_proxy import EgressProxy
from localcsi.testing.install import project_root
from localcsi.testing.phases import Phases
from localcsi.testing.tools import tool_path
from localcsi.testing.vm import HOST_LOOPBACK, free_port

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
# The `kubernetes` Service's ClusterIP (the first of the range): what pods' in-cluster config dials.
KUBERNETES_SERVICE_IP = "10.96.0.1"


class ClusterError(RuntimeError):
    pass


class KubeCluster(ClusterAccess):
    """`real_nodes` makes it a control plane for kubelets: Node authorization with NodeRestriction,
    ServiceAccount admission, and a kube-controller-manager (service accounts, the root CA config
    map, PV binding, workload controllers, garbage collection); nothing of deploy/ is applied, since
    localcsi is then installed with its chart."""

    def __init__(self, phases: Phases | None = None, workdir: Path | None = None, real_nodes: bool = False) -> None:
        self.real_nodes = real_nodes
        self.phases = phases or Phases(prefix="[cluster]")
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="localcsi-cluster-"))
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self._tokens: dict[str, str] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.certs = make_certs(self.workdir / "pki", ("127.0.0.1", HOST_LOOPBACK, KUBERNETES_SERVICE_IP))
        # kube-apiserver's identity towards kubelets (logs, exec): system:masters may do anything there.
        self.kubelet_client = make_client_cert(
            self.certs, "apiserver-kubelet-client", "kube-apiserver", "system:masters"
        )
        # How the apiserver reaches kubelets in VMs: KubeNode adds its node's route.
        certs = self.certs
        self.egress = EgressProxy(certs.server_cert, certs.server_key, certs.ca_cert) if real_nodes else None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> KubeCluster:
        try:
            if self.egress is not None:
                self.egress.start()
            with self.phases.phase("etcd"):
                etcd_url = self._start_etcd()
            with self.phases.phase("kube-apiserver"):
                self._start_apiserver(etcd_url)
                self._wait_ready(timeout=120)
            if self.real_nodes:  # localcsi comes with `helm install`, as operators install it
                with self.phases.phase("kube-controller-manager"):
                    self._start_controller_manager()
            else:
                with self.phases.phase("CRDs and RBAC"):
                    self.install_crds()
                    self.apply_manifests(manifests(project_root() / "deploy" / "rbac"))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.egress is not None:
            self.egress.stop()
            self.egress = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def log(self, name: str, tail: int = 6000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._procs[name] = proc
        return proc

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(tool_path("etcd")),
                "--name=test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test={peer_url}",
                "--unsafe-no-fsync",  # a throwaway test store: durability buys nothing here
                "--log-level=warn",
            ],
        )
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        certs = self.certs
        self._spawn(
            "kube-apiserver",
            [
                str(tool_path("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={certs.server_cert}",
                f"--tls-private-key-file={certs.server_key}",
                f"--client-ca-file={certs.ca_cert}",
                f"--token-auth-file={self._write_token_file()}",
                "--allow-privileged=true",  # as kubeadm and kind set it: the node DaemonSet needs it
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
                *self._node_flags(),
            ],
        )

    def _node_flags(self) -> list[str]:
        if self.egress is None:
            # No kube-controller-manager creates default ServiceAccounts, so pods would be refused.
            return ["--authorization-mode=RBAC", "--disable-admission-plugins=ServiceAccount"]
        return [
            f"--egress-selector-config-file={self._egress_config(self.egress)}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={self.kubelet_client.cert}",
            f"--kubelet-client-key={self.kubelet_client.key}",
            # As kubeadm (and kind) set it. The node proxy (nodes/NAME/proxy/..., e.g. cAdvisor's metrics)
            # resolves a hostname itself before it dials, and nothing here resolves the node's.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def _egress_config(self, egress: EgressProxy) -> Path:
        identity = self.kubelet_client
        return egress.write_config(self.workdir / "egress.yaml", identity.cert, identity.key)

    def _start_controller_manager(self) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                str(tool_path("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig(ADMIN)}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--root-ca-file={self.certs.ca_cert}",
                f"--service-account-private-key-file={self.certs.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--v=1",
            ],
        )

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Authorization": f"Bearer {self.token()}"}
        request = urllib.request.Request(f"{self.server}/readyz", headers=headers)  # noqa: S310 (https only)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:  # noqa: S310 (https only)
                    if response.status == 200:
                        return
            except OSError as error:
                last = str(error)
            time.sleep(0.5)
        raise ClusterError(f"kube-apiserver not ready after {timeout:.0f}s ({last}):\n{self.log('kube-apiserver')}")

    # -- nodes -------------------------------------------------------------------------------
    def add_node(self, name: str, labels: dict[str, str] | None = None, pods: int = 110) -> None:
        """A schedulable Node object with no kubelet behind it; nothing to do when it exists.

        The TaintNodesByCondition admission plugin taints every new node not-ready; with no kubelet
        to report Ready, the taint is removed and a Ready condition written by hand."""
        core = client.CoreV1Api(self.api_client())
        resources = {"cpu": "64", "memory": "256Gi", "pods": str(pods)}
        node_labels = {"kubernetes.io/hostname": name, **(labels or {})}
        try:
            core.create_node({"metadata": {"name": name, "labels": node_labels}})
        except client.exceptions.ApiException as error:
            if error.status != 409:
                raise
            return
        core.patch_node(name, {"spec": {"taints": None}})
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node"}
        core.patch_node_status(
            name, {"status": {"capacity": resources, "allocatable": resources, "conditions": [ready]}}
        )

    def delete_node(self, name: str) -> None:
        core = client.CoreV1Api(self.api_client())
        try:
            core.delete_node(name)
        except client.exceptions.ApiException as error:
            if error.status != 404:
                raise

    # -- manifests ---------------------------------------------------------------------------
    def install_crds(
        self, directory: Path | None = None, timeout: float = 60, paths: list[Path] | None = None
    ) -> list[str]:
        """Create the CRDs of `paths`, or of the YAML files in `directory` (default deploy/crds), and
        wait until each is Established."""
        api = client.ApiextensionsV1Api(self.api_client())
        names = []
        for path in paths if paths is not None else manifests(directory or project_root() / "deploy" / "crds"):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    api.create_custom_resource_definition(doc)
                    names.append(doc["metadata"]["name"])
        deadline = time.monotonic() + timeout
        for name in names:
            while not _established(api.read_custom_resource_definition(name).to_dict()):
                if time.monotonic() > deadline:
                    raise ClusterError(f"CRD {name} not Established after {timeout:.0f}s")
                time.sleep(0.2)
        return names

    def apply_manifests(self, paths: list[Path], user: str = ADMIN) -> None:
        api = self.api_client(user)
        docs = [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]
        for doc in sorted(docs, key=lambda doc: doc.get("kind") != "Namespace"):  # namespaces first
            utils.create_from_dict(api, doc)


def manifests(directory: Path) -> list[Path]:
    """The YAML files of a deploy/ folder; none is an error (an installed package has no deploy/)."""
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise ClusterError(f"no manifests in {directory}: run from the source tree or set LOCALCSI_PROJECT_ROOT")
    return paths


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


@contextlib.contextmanager
def running_cluster(phases: Phases | None = None) -> Iterator[KubeCluster]:
    cluster = KubeCluster(phases)
    with cluster:
        yield cluster


@contextlib.contextmanager
def cluster_mode_controller(cluster: KubeCluster, socket: Path, operation_timeout: float) -> Iterator[Any]:
    """The plugin's Controller service in cluster mode on a real gRPC unix socket, as the
    localcsi-csi-controller service account; yields a Controller stub."""
    config = PluginConfig(
        mode=Mode.CONTROLLER,
        endpoint=f"unix://{socket}",
        kubeconfig=str(cluster.kubeconfig("localcsi-csi-controller")),
        operation_timeout=operation_timeout,
    )
    server = build_server(config)
    server.start()
    channel = grpc.insecure_channel(f"unix:{socket}")
    try:
        yield services.controller_stub(channel)
    finally:
        channel.close()
        server.stop(grace=None)
