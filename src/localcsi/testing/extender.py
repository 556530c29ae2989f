"""`localcsi extender` as its own process against a test cluster, as the localcsi-extender service
account (so deploy/rbac/extender.yaml is what authorizes it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from localcsi.testing.cluster import KubeCluster
from localcsi.testing.waiting import start_until


class ExtenderProcess:
    def __init__(
        self,
        cluster: KubeCluster,
        port: int,
        strategy: str = "binpack",
        log_level: str = "info",
        source: Path | None = None,
    ) -> None:
        self.cluster = cluster
        self.source = source  # another checkout's src/ to run localcsi from (a benchmark's A/B), or this one
        self.port = port
        self.strategy = strategy
        self.log_level = log_level
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cluster.workdir / f"extender-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> ExtenderProcess:
        kubeconfig = self.cluster.kubeconfig("localcsi-extender")
        argv = [sys.executable, "-m", "localcsi", "--log-format", "text", "--log-level", self.log_level]
        argv += ["extender", "--listen", f"127.0.0.1:{self.port}", "--kubeconfig", str(kubeconfig)]
        argv += ["--strategy", self.strategy]
        env = None if self.source is None else {**os.environ, "PYTHONPATH": str(self.source)}
        self.proc = start_until(
            "the extender's /healthz", argv, self.log_path, self._healthy, timeout=timeout, context=self.log, env=env
        )
        return self

    def _healthy(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"extender exited with {process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310 (http on loopback)
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(timeout=20)
