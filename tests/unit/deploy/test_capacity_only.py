"""The CSIStorageCapacity-only install (docs/extender.md, "Without the extender"): extender.enabled=false and
extender.rbac=false render nothing of the extender (and the webhook stays off), while everything
kube-scheduler's VolumeBinding needs for capacity is still there."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi import DRIVER_NAME
from localcsi.testing.install import load_project_script

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
GENERATE = load_project_script("deploy/generate.py")
NAMESPACE = "localcsi-system"
CAPACITY_ONLY = ("--set", "extender.enabled=false", "--set", "extender.rbac=false")
Object = dict[str, Any]
Key = tuple[str, str, str]


@functools.cache
def render(*values: str) -> tuple[Object, ...]:
    return tuple(doc for doc in yaml.safe_load_all(GENERATE.template(values, namespace=NAMESPACE, crds=False)) if doc)


def key(doc: Object) -> Key:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def component(doc: Object) -> str:
    return str(doc["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def test_nothing_of_the_extender_or_the_webhook_is_rendered() -> None:
    default = {key(doc): doc for doc in render()}
    extender = {k for k, doc in default.items() if component(doc) == "extender"}
    assert extender == {
        ("Deployment", NAMESPACE, "localcsi-extender"),
        ("Service", NAMESPACE, "localcsi-extender"),
        ("NetworkPolicy", NAMESPACE, "localcsi-extender"),
        ("ServiceAccount", NAMESPACE, "localcsi-extender"),
        ("ClusterRole", "", "localcsi-extender"),
        ("ClusterRoleBinding", "", "localcsi-extender"),
    }
    objects = render(*CAPACITY_ONLY)
    assert {key(doc) for doc in objects} == set(default) - extender
    assert not [doc for doc in objects if "extender" in doc["metadata"]["name"] or component(doc) == "webhook"]
    assert "MutatingWebhookConfiguration" not in {doc["kind"] for doc in objects}


def test_extender_enabled_false_alone_keeps_the_role_for_deploy_scheduler() -> None:
    names = {key(doc) for doc in render("--set", "extender.enabled=false")}
    assert ("ClusterRole", "", "localcsi-extender") in names
    assert ("Deployment", NAMESPACE, "localcsi-extender") not in names


def test_no_rbac_for_a_running_extender_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"extender\.rbac=false needs extender\.enabled=false"):
        GENERATE.template(("--set", "extender.rbac=false"), namespace=NAMESPACE, crds=False)


def test_capacity_is_still_published_for_the_scheduler() -> None:
    objects = render(*CAPACITY_ONLY)
    (driver,) = [doc for doc in objects if doc["kind"] == "CSIDriver"]
    assert driver["metadata"]["name"] == DRIVER_NAME and driver["spec"]["storageCapacity"] is True
    (controller,) = [doc for doc in objects if key(doc) == ("Deployment", NAMESPACE, "localcsi-csi-controller")]
    containers = {c["name"]: c for c in controller["spec"]["template"]["spec"]["containers"]}
    provisioner = containers["csi-provisioner"]
    assert {"--enable-capacity", "--capacity-ownerref-level=2", "--feature-gates=Topology=true"} <= set(
        provisioner["args"]
    )
    assert {item["name"] for item in provisioner["env"]} == {"NAMESPACE", "POD_NAME"}
    (role,) = [doc for doc in objects if key(doc) == ("Role", NAMESPACE, "localcsi-csi-controller")]
    capacity_verbs = {
        verb for rule in role["rules"] if "csistoragecapacities" in rule["resources"] for verb in rule["verbs"]
    }
    assert {"list", "watch", "create", "update", "delete"} <= capacity_verbs
    classes = [doc for doc in objects if doc["kind"] == "StorageClass"]
    assert classes and {doc["volumeBindingMode"] for doc in classes} == {"WaitForFirstConsumer"}


def test_the_docs_install_it_with_these_values() -> None:
    section = (REPO / "docs" / "extender.md").read_text().partition("## Without the extender")[2].partition("\n## ")[0]
    assert "--set extender.enabled=false --set extender.rbac=false" in section
    assert "`extender.rbac`" in (REPO / "docs" / "install.md").read_text()
