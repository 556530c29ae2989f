"""The workload manifests in deploy/localcsi: what they run must be what this build accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi import DRIVER_NAME, cli

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
OUR_IMAGE = "ghcr.io/localcsi/localcsi:"


def docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


WORKLOADS = [doc for doc in docs(DEPLOY / "localcsi" / "node.yaml") + docs(DEPLOY / "localcsi" / "controller.yaml")]
SERVICE_ACCOUNTS = {
    doc["metadata"]["name"]
    for path in (DEPLOY / "rbac").glob("*.yaml")
    for doc in docs(path)
    if doc["kind"] == "ServiceAccount"
}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: str(w["metadata"]["name"]))
def test_our_containers_args_parse_with_this_cli(workload: dict[str, Any]) -> None:
    ours = [c for c in containers(workload) if c["image"].startswith(OUR_IMAGE)]
    assert ours, "every workload runs at least one localcsi container"
    for container in ours:
        args = cli.build_parser().parse_args(container["args"])  # SystemExit on an unknown flag
        assert args.command in cli.COMMAND_RUNNERS


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: str(w["metadata"]["name"]))
def test_workloads_use_a_shipped_service_account_and_pinned_images(workload: dict[str, Any]) -> None:
    spec = workload["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] in SERVICE_ACCOUNTS
    assert workload["metadata"]["namespace"] == "localcsi-system"
    for container in containers(workload):
        image = container["image"]
        tag = image.rpartition(":")[2]
        assert "/" not in tag and tag not in ("", "latest"), f"{container['name']}: unpinned image {image}"


def test_the_registrar_registers_the_socket_the_plugin_serves() -> None:
    (node,) = [w for w in WORKLOADS if w["kind"] == "DaemonSet"]
    by_name = {c["name"]: c for c in containers(node)}
    plugin_args = cli.build_parser().parse_args(by_name["plugin"]["args"])
    assert plugin_args.mode == "node" and plugin_args.lvm_nsenter
    socket_dir = next(v for v in node["spec"]["template"]["spec"]["volumes"] if v["name"] == "socket-dir")
    registrar = " ".join(by_name["node-driver-registrar"]["args"])
    assert f"--kubelet-registration-path={socket_dir['hostPath']['path']}/csi.sock" in registrar
    assert plugin_args.endpoint == "unix:///csi/csi.sock"
    assert node["spec"]["template"]["spec"]["hostPID"] is True  # nsenter into PID 1


def test_storage_classes_name_our_driver_and_bind_late() -> None:
    classes = [d for d in docs(DEPLOY / "localcsi" / "storageclasses.yaml") if d["kind"] == "StorageClass"]
    assert classes
    for storage_class in classes:
        assert storage_class["provisioner"] == DRIVER_NAME
        assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    (driver,) = docs(DEPLOY / "localcsi" / "csidriver.yaml")
    assert driver["metadata"]["name"] == DRIVER_NAME and driver["spec"]["storageCapacity"] is True
