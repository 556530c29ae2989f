"""The real kube-scheduler (built from Go modules) against a test cluster, with or without our extender.

It authenticates as system:kube-scheduler, whom kube-apiserver's bootstrap RBAC already authorizes,
and runs without leader election. `extender_url` adds a KubeSchedulerConfiguration extender entry
exactly as deploy/scheduler/kube-scheduler-config.yaml does (with `managed_resources`, its
managedResources too).
"""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from localcsi.testing.cluster import ClusterError, KubeCluster
from localcsi.testing.cluster_access import SCHEDULER
from localcsi.testing.tools import tool_path
from localcsi.testing.vm import free_port
from localcsi.webhook import CAPACITY_RESOURCE


def scheduler_config(
    kubeconfig: Path, extender_url: str | None, ignorable: bool = False, managed_resources: bool = False
) -> dict[str, Any]:
    """With ``managed_resources`` the extender is asked only about pods that request CAPACITY_RESOURCE (the
    webhook's mark), as deploy/scheduler configures it; without, about every pod."""
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 200, "burst": 400},
        "leaderElection": {"leaderElect": False},
    }
    if extender_url:
        config["extenders"] = [
            {
                "urlPrefix": extender_url,
                "filterVerb": "filter",
                "prioritizeVerb": "prioritize",
                "weight": 5,
                "enableHTTPS": False,
                "nodeCacheCapable": True,
                "ignorable": ignorable,
                "httpTimeout": "5s",
            }
        ]
        if managed_resources:
            config["extenders"][0]["managedResources"] = [{"name": CAPACITY_RESOURCE, "ignoredByScheduler": True}]
    return config


class KubeScheduler:
    def __init__(
        self,
        cluster: KubeCluster,
        extender_url: str | None = None,
        ignorable: bool = False,
        managed_resources: bool = False,
    ) -> None:
        self.cluster = cluster
        self.extender_url = extender_url
        self.ignorable = ignorable
        self.managed_resources = managed_resources
        self.health_port = free_port()
        self.name = f"kube-scheduler-{self.health_port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.cluster.workdir / f"{self.name}.log"

    def start(self, timeout: float = 60) -> KubeScheduler:
        config_path = self.cluster.workdir / f"{self.name}.yaml"
        kubeconfig = self.cluster.kubeconfig(SCHEDULER)
        config = scheduler_config(kubeconfig, self.extender_url, self.ignorable, self.managed_resources)
        config_path.write_text(yaml.safe_dump(config))
        argv = [
            str(tool_path("kube-scheduler")),
            f"--config={config_path}",
            f"--secure-port={self.health_port}",
            "--bind-address=127.0.0.1",
            "--authentication-skip-lookup=true",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--v=2",
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()  # a failed start must not leave a process behind
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        context = ssl._create_unverified_context()  # noqa: S323 (its own self-signed loopback cert)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ClusterError(f"kube-scheduler exited with {self._proc.returncode}:\n{self.log()}")
            try:
                url = f"https://127.0.0.1:{self.health_port}/healthz"
                with urllib.request.urlopen(url, context=context, timeout=3) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise ClusterError(f"kube-scheduler not healthy after {timeout:.0f}s:\n{self.log()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def log(self, tail: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def __enter__(self) -> KubeScheduler:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
