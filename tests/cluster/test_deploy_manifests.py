"""What is shipped passes the real apiserver's validation, server-side dry run, with the CRDs and RBAC the
cluster fixture installed from deploy/: the Helm chart rendered with its defaults and with every optional
part on or off (deploy/helm/localcsi/ci/), which the kustomize base in deploy/ equals (tests/unit/deploy),
and the hand-written manifests of deploy/scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from localcsi.testing.cluster import KubeCluster
from localcsi.testing.cluster_access import SYSTEM_NAMESPACE
from localcsi.testing.install import load_project_script

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CI_VALUES = DEPLOY / "helm" / "localcsi" / "ci"
# No snapshot CRDs in the test cluster: the external-snapshotter project ships those; nor the Prometheus
# Operator's (tests/unit/deploy/test_monitoring_chart.py checks those two objects), nor cert-manager's (the
# all-on webhook's Certificate: tests/unit/deploy/test_webhook_chart.py). A KubeSchedulerConfiguration is a
# file kube-scheduler reads, not an API object.
NOT_INSTALLED = {
    "VolumeSnapshotClass", "KubeSchedulerConfiguration", "ServiceMonitor", "PrometheusRule", "Certificate", "Issuer"
}  # fmt: skip
# kube-scheduler-config.yaml holds only a KubeSchedulerConfiguration (checked by tests/unit/extender).
SCHEDULER_MANIFESTS = sorted(
    path for path in (DEPLOY / "scheduler").glob("*.yaml") if path.name != "kube-scheduler-config.yaml"
)
FIELD_MANAGER = "localcsi-dry-run"


GENERATE = load_project_script("deploy/generate.py")
# namespace.create=true everywhere: the Namespace object is checked too (it exists, so it is an update).
RENDERS: dict[str, tuple[str, ...]] = {
    "defaults": GENERATE.BASE_VALUES,
    "all-on": ("--values", str(CI_VALUES / "all-on-values.yaml")),
    "all-off": ("--values", str(CI_VALUES / "all-off-values.yaml"), *GENERATE.BASE_VALUES),
    # all-on takes the webhook's certificate from cert-manager; this one is helm's Secret and caBundle.
    "webhook-helm-certificates": ("--set", "webhook.enabled=true", *GENERATE.BASE_VALUES),
}


def dry_run_apply(api: dynamic.DynamicClient, doc: dict[str, Any]) -> None:
    """Server-side apply with dryRun=All: full validation and admission, created or merged with what the
    fixture made (CRDs, namespace, RBAC), nothing stored."""
    resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    api.server_side_apply(
        resource,
        body=doc,
        namespace=doc["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
        dry_run="All",
    )


@pytest.mark.parametrize("render", RENDERS)
def test_the_chart_is_accepted_by_the_apiserver(kube_cluster: KubeCluster, render: str) -> None:
    api = dynamic.DynamicClient(kube_cluster.api_client())
    rendered = str(GENERATE.template(RENDERS[render], namespace=SYSTEM_NAMESPACE, crds=True))
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    rejected = []
    checked = set()
    for doc in docs:
        if doc["kind"] in NOT_INSTALLED:
            continue
        try:
            dry_run_apply(api, doc)
        except client.exceptions.ApiException as error:
            rejected.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.body}")
        checked.add(doc["kind"])
    assert not rejected, "\n".join(rejected)
    assert {"CustomResourceDefinition", "ClusterRole", "DaemonSet", "Deployment", "CSIDriver"} <= checked
    if render == "all-on":
        assert {"Namespace", "NetworkPolicy", "Service", "StorageClass", "NodeLocalStorageInitConfig"} <= checked
    if render.startswith("webhook") or render == "all-on":
        assert "MutatingWebhookConfiguration" in checked
    if render.startswith("webhook"):
        assert "Secret" in checked


@pytest.mark.parametrize("path", SCHEDULER_MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scheduler_manifest_is_accepted_by_the_apiserver(kube_cluster: KubeCluster, path: Path) -> None:
    api = dynamic.DynamicClient(kube_cluster.api_client())
    checked = 0
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc["kind"] in NOT_INSTALLED:
            continue
        resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace")
        try:
            resource.create(body=doc, namespace=namespace, dry_run="All")
        except client.exceptions.ApiException as error:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']} rejected: {error.body}")
        checked += 1
    assert checked > 0


def test_a_broken_object_is_rejected(kube_cluster: KubeCluster) -> None:
    """The dry run validates: a DaemonSet whose selector does not match its pods is refused."""
    api = dynamic.DynamicClient(kube_cluster.api_client())
    docs = [doc for doc in yaml.safe_load_all(GENERATE.template((), crds=False)) if doc]
    (node,) = [doc for doc in docs if doc["kind"] == "DaemonSet"]
    node["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "something-else"}
    with pytest.raises(client.exceptions.ApiException) as raised:
        dry_run_apply(api, node)
    assert raised.value.status == 422
