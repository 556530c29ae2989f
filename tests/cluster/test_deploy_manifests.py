"""The shipped manifests pass the real apiserver's validation (server-side dry run), with the CRDs and
RBAC the cluster fixture installed from deploy/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client, dynamic

from localcsi.testing.cluster import KubeCluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# No snapshot CRDs in the test cluster: the external-snapshotter project ships those. A
# KubeSchedulerConfiguration is a file kube-scheduler reads, not an API object.
NOT_INSTALLED = {"VolumeSnapshotClass", "KubeSchedulerConfiguration"}
FOLDERS = ("localcsi", "extender", "scheduler")
# kube-scheduler-config.yaml holds only a KubeSchedulerConfiguration (checked by tests/unit/extender).
MANIFESTS = sorted(
    path for folder in FOLDERS for path in (DEPLOY / folder).glob("*.yaml") if path.name != "kube-scheduler-config.yaml"
)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_manifest_is_accepted_by_the_apiserver(kube_cluster: KubeCluster, path: Path) -> None:
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
