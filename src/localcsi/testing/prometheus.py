"""A real Prometheus (the Debian package's binary) started for a test, and the dashboard's queries.

    with Prometheus(tmp_path, {"agent": ["127.0.0.1:9810"]}, rule_files=[RULES]) as prom:
        prom.wait_for_targets()
        for panel, expr in dashboard_queries(DASHBOARD):
            assert prom.query(expr), panel

``Prometheus`` writes a prometheus.yml with static targets (one job per component), listens on a free
loopback port, and answers the HTTP API: ``query`` (instant vector), ``alerts``, ``targets``.
``dashboard_queries`` reads every panel's PromQL from the Grafana dashboard with its variables filled in,
as Grafana would send them. Used by tests/unit/metrics (synthetic metrics) and the e2e tier (the real node).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import yaml

from localcsi.testing.install import project_root
from localcsi.testing.vm import free_port
from localcsi.testing.waiting import wait_for

INSTALL_HINT: Final = "install the Debian package `prometheus` (apt-get install -y prometheus; hack/install-deps does)"
DASHBOARD: Final = Path("deploy/helm/localcsi/files/localcsi-dashboard.json")
RULES: Final = Path("deploy/helm/localcsi/files/localcsi-rules.yaml")
# Metrics the dashboard reads that no localcsi process serves: the kubelet's cAdvisor endpoint has them.
EXTERNAL_PREFIXES: Final = ("container_",)

Sample = dict[str, Any]  # {"metric": {labels}, "value": [time, "text"]}


def binary(name: str) -> str:
    """The path of prometheus or promtool; an AssertionError that says how to get it when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not on PATH: {INSTALL_HINT}")
    return path


def dashboard_queries(
    path: Path | None = None, variables: Mapping[str, str] | None = None, rate_interval: str = "1m"
) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, $variables replaced (``node``: ``.*``, all)."""
    document = json.loads((path or project_root() / DASHBOARD).read_text())
    values = {"node": ".*", **(variables or {})}
    queries = []
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", rate_interval)
            for name, value in values.items():
                expr = expr.replace(f"${name}", value)
            queries.append((panel["title"], expr))
    return queries


def is_external(expr: str) -> bool:
    return any(prefix in expr for prefix in EXTERNAL_PREFIXES)


class Prometheus:
    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, Sequence[str]],
        *,
        rule_files: Iterable[Path] = (),
        interval: str = "1s",
        scrape_configs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """``targets``: job -> plain HTTP addresses; ``scrape_configs``: further jobs as Prometheus takes them
        (TLS, paths, labels), such as ``apiserver_proxy_job`` makes."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
                for job, addresses in targets.items()
            ]
            + [dict(job) for job in scrape_configs],
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config))
        argv = [
            binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for("Prometheus to be ready", self._ready, timeout=timeout, context=self.log_tail)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self._proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:  # noqa: S310 (loopback)
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as response:  # noqa: S310
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        """The instant vector of ``expr`` now (an error for a query Prometheus refuses)."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise AssertionError(f"{expr}: a {data['resultType']}, not an instant vector")
        return list(data["result"])

    def value(self, expr: str, **labels: str) -> float:
        """The one sample of ``expr`` whose labels include ``labels``."""
        matching = [s for s in self.query(expr) if labels.items() <= s["metric"].items()]
        if len(matching) != 1:
            raise AssertionError(f"{expr} {labels}: {len(matching)} samples, not 1: {matching}")
        return float(matching[0]["value"][1])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def wait_for_targets(self, timeout: float = 60) -> None:
        """Every target scraped at least once, and up."""

        def all_up() -> bool:
            targets = self.targets()
            return bool(targets) and all(t["health"] == "up" for t in targets)

        wait_for("every scrape target up", all_up, timeout=timeout, context=lambda: json.dumps(self.targets()))

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])


def apiserver_proxy_job(job: str, configuration: Any, paths: Mapping[str, str]) -> dict[str, Any]:
    """A scrape job through the Kubernetes apiserver's proxy (``/api/v1/.../proxy/...``): ``paths`` maps
    each target's ``instance`` label to its path, and ``configuration`` (a kubernetes client's
    Configuration) gives the server, its CA and the client's token or certificate."""
    url = urllib.parse.urlsplit(configuration.host)
    tls: dict[str, Any] = {"ca_file": configuration.ssl_ca_cert} if configuration.ssl_ca_cert else {}
    if configuration.cert_file:
        tls |= {"cert_file": configuration.cert_file, "key_file": configuration.key_file}
    if not configuration.verify_ssl:
        tls["insecure_skip_verify"] = True
    config: dict[str, Any] = {
        "job_name": job,
        "scheme": url.scheme,
        "tls_config": tls,
        "static_configs": [
            {"targets": [url.netloc], "labels": {"__metrics_path__": path, "instance": instance}}
            for instance, path in paths.items()
        ],
    }
    token = configuration.get_api_key_with_prefix("authorization") or ""
    if token:
        config["authorization"] = {"type": "Bearer", "credentials": token.removeprefix("Bearer ").strip()}
    return config
