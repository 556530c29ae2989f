"""Runs `localcsi agent` inside the node VM against the test cluster's apiserver.

The VM boots with `host_loopback`, so the guest reaches the host's kube-apiserver at HOST_LOOPBACK;
the agent authenticates as the localcsi-agent service account, so deploy/rbac/agent.yaml is what
authorizes it. The Node object the agent serves is created here: there is no kubelet.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

from localcsi.testing.cluster import KubeCluster
from localcsi.testing.guest_client import GuestError
from localcsi.testing.install import GUEST_LAUNCHER
from localcsi.testing.vm import NodeVM

GUEST_KUBECONFIG = "/etc/localcsi/kubeconfig"
GUEST_CA = "/etc/localcsi/ca.crt"
LOG = "/var/log/localcsi-agent.log"


def connect_guest(vm: NodeVM, cluster: KubeCluster, user: str = "localcsi-agent") -> str:
    """Put the CA and a kubeconfig for `user` into the guest; returns the kubeconfig's guest path."""
    if not vm.config.host_loopback:
        raise GuestError("the VM must boot with VMConfig(host_loopback=True) to reach the apiserver")
    vm.guest.put(GUEST_CA, cluster.ca_file.read_bytes())
    vm.guest.put(GUEST_KUBECONFIG, cluster.guest_kubeconfig(user, GUEST_CA).encode(), mode=0o600)
    return GUEST_KUBECONFIG


@dataclass
class GuestAgent:
    vm: NodeVM
    cluster: KubeCluster
    node_name: str = "node-1"
    extra_args: tuple[str, ...] = ()
    pid: int | None = field(default=None, init=False)

    def argv(self) -> list[str]:
        base = [GUEST_LAUNCHER, "--log-format", "json", "--log-level", "debug", "agent"]
        return [*base, "--node-name", self.node_name, "--kubeconfig", GUEST_KUBECONFIG, *self.extra_args]

    def start(self) -> GuestAgent:
        connect_guest(self.vm, self.cluster)
        self.cluster.add_node(self.node_name)
        self.pid = self.vm.guest.spawn(self.argv(), log=LOG)
        time.sleep(0.5)
        alive, rc = self.vm.guest.signal(self.pid, 0)
        if not alive:
            raise GuestError(f"agent exited with {rc} at start:\n{self.logs()}")
        return self

    def alive(self) -> bool:
        return self.pid is not None and self.vm.guest.signal(self.pid, 0)[0]

    def kill(self, signum: int = signal.SIGKILL, wait: float = 30.0) -> int | None:
        assert self.pid is not None, "agent not started"
        _, rc = self.vm.guest.signal(self.pid, signum, wait=wait)
        self.pid = None
        return rc

    def stop(self) -> int | None:
        return self.kill(signal.SIGTERM) if self.pid is not None else None

    def logs(self, tail: int = 20000) -> str:
        result = self.vm.run(["tail", "-c", str(tail), LOG])
        return result.stdout if result.rc == 0 else f"(no log: {result.stderr.strip()})"
