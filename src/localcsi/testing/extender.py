"""`localcsi extender` as its own process against a test cluster, as the localcsi-extender service
account (so deploy/rbac/extender.yaml is what authorizes it)."""

from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
import urllib.request
from pathlib import Path

import localcsi
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.waiting import start_until

THIS_TREE = Path(localcsi.__file__).resolve().parent.parent


def python_env(python: str, source: Path | None = None) -> dict[str, str] | None:
    """The environment in which `python` runs localcsi from `source` (another checkout's src/) or from
    this tree: None when that is this process's own interpreter and tree. Another interpreter, such as
    Debian's /usr/bin/python3 that the localcsi image runs, gets this environment's packages on its
    path; it must be the same CPython minor version, for whose ABI the installed wheels (numpy's) were
    built."""
    if python == sys.executable and source is None:
        return None
    if python != sys.executable:
        probe = [python, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"]
        found = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split()
        wanted = [sys.implementation.name, *map(str, sys.version_info[:2])]
        if found != wanted:
            raise ValueError(f"{python} is {' '.join(found)}; this environment's packages are for {' '.join(wanted)}")
    paths = [str(source or THIS_TREE)] + ([] if python == sys.executable else site.getsitepackages())
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


class ExtenderProcess:
    def __init__(
        self,
        cluster: KubeCluster,
        port: int,
        strategy: str = "binpack",
        log_level: str = "info",
        *,
        source: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.cluster = cluster
        self.source = source  # another checkout's src/ to run localcsi from (a benchmark's A/B), or this one
        self.python = python  # the interpreter, with this environment's packages (python_env)
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
        argv = [self.python, "-m", "localcsi", "--log-format", "text", "--log-level", self.log_level]
        argv += ["extender", "--listen", f"127.0.0.1:{self.port}", "--kubeconfig", str(kubeconfig)]
        argv += ["--strategy", self.strategy]
        env = python_env(self.python, self.source)
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
