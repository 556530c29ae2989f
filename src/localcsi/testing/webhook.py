"""`localcsi webhook` as its own process against a test cluster, as the localcsi-webhook service account
(the chart's RBAC, applied by ``apply_webhook_rbac``), serving HTTPS on loopback with a certificate of a
CA made for the test, and the chart's MutatingWebhookConfiguration pointed at it by URL."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, utils

from localcsi.testing.certs import ClusterCerts, make_certs
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.cluster_access import SYSTEM_NAMESPACE
from localcsi.testing.install import load_project_script
from localcsi.testing.waiting import start_until

NAME = "localcsi-webhook"


def chart_webhook_objects(namespace: str = SYSTEM_NAMESPACE) -> list[dict[str, Any]]:
    """The webhook's objects as the chart renders them with webhook.enabled=true."""
    generate = load_project_script("deploy/generate.py")
    rendered = generate.template(("--set", "webhook.enabled=true"), namespace=namespace, crds=False)
    return [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "webhook"
    ]


def apply_webhook_rbac(cluster: KubeCluster, objects: list[dict[str, Any]]) -> None:
    """The chart's ServiceAccount, ClusterRole and ClusterRoleBinding of the webhook; those that exist stay."""
    api = cluster.api_client()
    for doc in objects:
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            try:
                utils.create_from_dict(api, doc)
            except utils.FailToCreateError as error:
                if any(getattr(cause, "status", None) != 409 for cause in error.api_exceptions):
                    raise


def configuration_by_url(objects: list[dict[str, Any]], url: str, ca_cert: Path) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration, calling ``url`` (the process on loopback) instead of the
    Service, trusting ``ca_cert``: everything else (rules, selector, failure policy) as shipped."""
    (configuration,) = [doc for doc in objects if doc["kind"] == "MutatingWebhookConfiguration"]
    ca_bundle = base64.b64encode(ca_cert.read_bytes()).decode()
    for webhook in configuration["webhooks"]:
        webhook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
    return configuration


class WebhookProcess:
    def __init__(self, cluster: KubeCluster, port: int, metrics_port: int) -> None:
        self.cluster = cluster
        self.port = port
        self.metrics_port = metrics_port
        self.url = f"https://127.0.0.1:{port}/mutate"
        self.certs: ClusterCerts = make_certs(cluster.workdir / f"webhook-{port}-pki", ("127.0.0.1",))
        self.log_path = cluster.workdir / f"webhook-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> WebhookProcess:
        argv = [sys.executable, "-m", "localcsi", "--log-format", "text", "--log-level", "debug", "webhook"]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--metrics-address", f"127.0.0.1:{self.metrics_port}"]
        argv += ["--tls-cert-file", str(self.certs.server_cert), "--tls-key-file", str(self.certs.server_key)]
        argv += ["--kubeconfig", str(self.cluster.kubeconfig(NAME))]
        what = "the webhook's /healthz over HTTPS"
        self.proc = start_until(what, argv, self.log_path, self._healthy, timeout=timeout, context=self.log)
        return self

    def _healthy(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"webhook exited with {process.returncode}:\n{self.log()}")
        context = ssl.create_default_context(cafile=str(self.certs.ca_cert))
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.port}/healthz", context=context, timeout=2
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(timeout=20)

    def install(self, objects: list[dict[str, Any]]) -> str:
        """Create the configuration that sends pods here; returns its name (delete it when done)."""
        configuration = configuration_by_url(objects, self.url, self.certs.ca_cert)
        client.AdmissionregistrationV1Api(self.cluster.api_client()).create_mutating_webhook_configuration(
            configuration
        )
        return str(configuration["metadata"]["name"])
