"""The workloads the chart renders (with its defaults and with every optional part on or off) and the
hand-written ones of deploy/scheduler: what they run must be what this build accepts and what the
kubelet and the sidecars expect."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from pod_spec import all_containers

from localcsi import DRIVER_NAME, __version__, cli
from localcsi.testing.install import load_project_script

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
CI_VALUES = DEPLOY / "helm" / "localcsi" / "ci"
SCHEDULER_FILES = sorted((DEPLOY / "scheduler").glob("*.yaml"))
NAMESPACE = "localcsi-system"
# Upstream containers; every other container runs the localcsi image.
UPSTREAM_IMAGES = (
    "/csi-provisioner:",
    "/csi-resizer:",
    "/csi-snapshotter:",
    "/snapshot-controller:",
    "/kube-scheduler:",
)


GENERATE = load_project_script("deploy/generate.py")
VARIANTS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "all-on": ("--values", str(CI_VALUES / "all-on-values.yaml")),
    "all-off": ("--values", str(CI_VALUES / "all-off-values.yaml")),
}


@functools.cache
def rendered(variant: str) -> tuple[dict[str, Any], ...]:
    text = str(GENERATE.template(VARIANTS[variant], crds=False))
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_specs(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every Pod, Deployment and DaemonSet."""
    specs = []
    for doc in objects:
        if doc["kind"] == "Pod":
            specs.append((doc["metadata"]["name"], doc["spec"]))
        elif doc["kind"] in ("Deployment", "DaemonSet"):
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
    return specs


def ours(container: dict[str, Any]) -> bool:
    return not any(marker in container["image"] for marker in UPSTREAM_IMAGES)


def workload(variant: str, name: str) -> dict[str, Any]:
    (found,) = [
        doc
        for doc in rendered(variant)
        if doc["kind"] in ("Deployment", "DaemonSet") and doc["metadata"]["name"] == name
    ]
    return found


def by_name(pod_spec: dict[str, Any], key: str = "containers") -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in pod_spec[key]}


SOURCES = [*VARIANTS, *(f"scheduler/{path.name}" for path in SCHEDULER_FILES if pod_specs(docs(path)))]


def objects_of(source: str) -> list[dict[str, Any]]:
    if source.startswith("scheduler/"):
        return docs(DEPLOY / source)
    return list(rendered(source))


@pytest.mark.parametrize("source", SOURCES)
def test_our_containers_args_parse_with_this_cli(source: str) -> None:
    """Every flag given to `localcsi` exists, with a valid value, in this build's CLI."""
    checked = 0
    for name, spec in pod_specs(objects_of(source)):
        for container in filter(ours, all_containers(spec)):
            args = cli.parse_args(container["args"])  # SystemExit on an unknown flag or a bad combination
            assert args.command in cli.COMMAND_RUNNERS, f"{name}/{container['name']}"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_workloads_use_a_rendered_service_account_and_pinned_images(variant: str) -> None:
    accounts = {doc["metadata"]["name"] for doc in rendered(variant) if doc["kind"] == "ServiceAccount"}
    specs = pod_specs(rendered(variant))
    assert len(specs) >= 3
    for name, spec in specs:
        assert spec["serviceAccountName"] in accounts, name
        for container in all_containers(spec):
            image = container["image"]
            tag = image.rpartition(":")[2]
            assert "/" not in tag and tag not in ("", "latest"), f"{name}/{container['name']}: unpinned image {image}"
    for doc in rendered(variant):
        if doc["kind"] in ("Deployment", "DaemonSet"):
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_our_images_default_to_this_version() -> None:
    images = {c["image"] for _, spec in pod_specs(rendered("defaults")) for c in all_containers(spec) if ours(c)}
    assert images == {f"ghcr.io/localcsi/localcsi:{__version__}"}
    for path in SCHEDULER_FILES:  # hand-written: kept in step by this test
        for name, spec in pod_specs(docs(path)):
            for container in filter(ours, all_containers(spec)):
                assert container["image"] == f"ghcr.io/localcsi/localcsi:{__version__}", f"{path.name}: {name}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_plugin_registers_itself_where_the_kubelet_looks(variant: str) -> None:
    node = workload(variant, "localcsi-node")
    spec = node["spec"]["template"]["spec"]
    containers = by_name(spec)
    names = {container["name"] for container in all_containers(spec)}
    assert names == {"plugin", "agent"}, "no node-driver-registrar nor livenessprobe sidecar"
    plugin = containers["plugin"]
    args = cli.parse_args(plugin["args"])
    volumes = {
        name: volume["hostPath"]["path"] for name, volume in by_name(spec, "volumes").items() if "hostPath" in volume
    }
    mounts = {mount["mountPath"]: mount for mount in plugin["volumeMounts"]}

    assert args.mode == "node" and args.node_id == "$(NODE_NAME)"
    assert args.endpoint == "unix:///csi/csi.sock" and mounts["/csi"]["name"] == "socket-dir"
    kubelet_dir = volumes["kubelet-dir"]
    assert volumes["socket-dir"] == f"{kubelet_dir}/plugins/{DRIVER_NAME}"
    assert args.kubelet_registration_path == f"{volumes['socket-dir']}/csi.sock"
    assert mounts[args.registration_dir]["name"] == "registration-dir"
    assert volumes["registration-dir"] == f"{kubelet_dir}/plugins_registry"
    # The kubelet hands the plugin host paths: the kubelet directory is mounted at the same path.
    assert mounts[kubelet_dir] == {"name": "kubelet-dir", "mountPath": kubelet_dir, "mountPropagation": "Bidirectional"}
    health_port = int(args.health_address.rpartition(":")[2])
    ports = {port["name"]: port["containerPort"] for port in plugin["ports"]}
    probe = plugin["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == health_port
    assert plugin["securityContext"] == {"privileged": True}
    assert ports["metrics"] == int(args.metrics_address.rpartition(":")[2]) != health_port
    agent = cli.parse_args(containers["agent"]["args"])
    assert args.lvm_nsenter == agent.lvm_nsenter == spec["hostPID"]  # nsenter into PID 1 needs the host's PIDs


def test_defaults_run_lvm_through_nsenter_and_rescan_every_minute() -> None:
    containers = by_name(workload("defaults", "localcsi-node")["spec"]["template"]["spec"])
    agent = cli.parse_args(containers["agent"]["args"])
    assert agent.lvm_nsenter and agent.resync_seconds == 60 and agent.log_level == "info"
    assert cli.parse_args(containers["plugin"]["args"]).lvm_nsenter


def test_values_reach_the_flags() -> None:
    containers = by_name(workload("all-on", "localcsi-node")["spec"]["template"]["spec"])
    assert cli.parse_args(containers["agent"]["args"]).resync_seconds == 30
    for name, spec in pod_specs(rendered("all-on")):
        for container in filter(ours, all_containers(spec)):
            assert cli.parse_args(container["args"]).log_level == "debug", name
    (extender,) = workload("all-on", "localcsi-extender")["spec"]["template"]["spec"]["containers"]
    assert cli.parse_args(extender["args"]).strategy == "spread"


def test_the_provisioner_tracks_capacity_per_node() -> None:
    """What docs/extender.md#without-the-extender-csistoragecapacity says the operator enables."""
    spec = workload("defaults", "localcsi-csi-controller")["spec"]["template"]["spec"]
    provisioner = by_name(spec)["csi-provisioner"]
    args = set(provisioner["args"])
    assert {
        "--csi-address=/csi/csi.sock",
        "--leader-election",
        "--feature-gates=Topology=true",
        "--enable-capacity",
        "--capacity-ownerref-level=2",
        "--extra-create-metadata",
        "--default-fstype=ext4",
    } <= args
    env = {item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"] for item in provisioner["env"]}
    assert env == {"NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    plugin = cli.parse_args(by_name(spec, "initContainers")["plugin"]["args"])
    assert plugin.mode == "controller" and plugin.registration_dir == ""


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_csi_controller_starts_its_sidecars_once_the_plugin_answers(variant: str) -> None:
    """The controller-mode plugin is a native sidecar: an init container restarted whenever it exits
    (restartPolicy Always) whose startup probe, /healthz on its metrics port (200 once its CSI endpoint
    answers), holds back the regular containers: the CSI sidecars, which exit while /csi/csi.sock is missing."""
    spec = workload(variant, "localcsi-csi-controller")["spec"]["template"]["spec"]
    (plugin,) = spec["initContainers"]
    assert plugin["name"] == "plugin" and plugin["restartPolicy"] == "Always"
    sidecars = [container["name"] for container in spec["containers"]]
    assert sidecars == ["csi-provisioner", "csi-resizer", "csi-snapshotter"]
    args = cli.parse_args(plugin["args"])
    assert args.command == "plugin" and args.mode == "controller" and args.endpoint == "unix:///csi/csi.sock"
    ports = {port["name"]: port["containerPort"] for port in plugin["ports"]}
    assert ports == {"metrics": int(args.metrics_address.rpartition(":")[2])} == {"metrics": 9808}
    startup, liveness = plugin["startupProbe"], plugin["livenessProbe"]
    assert startup["httpGet"] == liveness["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert (startup["periodSeconds"], startup["timeoutSeconds"]) == (2, 3)
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "10 minutes to start on a slow node"
    # The socket the probe proves is the one every sidecar dials, on the volume they share.
    for container in all_containers(spec):
        assert {"name": "socket-dir", "mountPath": "/csi"} in container["volumeMounts"], container["name"]
    for sidecar in spec["containers"]:
        assert "--csi-address=/csi/csi.sock" in sidecar["args"], sidecar["name"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_leader_election_stays_in_the_pods_namespace(variant: str) -> None:
    """No namespace is written into an argument: the sidecars default to their pod's namespace and the
    storage controller reads POD_NAMESPACE, so a release elsewhere (or a kustomize overlay) just works."""
    for name, spec in pod_specs(rendered(variant)):
        for container in all_containers(spec):
            assert not any("namespace" in arg for arg in container.get("args", [])), f"{name}/{container['name']}"
            if not ours(container) and name != "localcsi-snapshot-controller":
                assert "--leader-election" in container["args"], f"{name}/{container['name']}"
    controller = by_name(workload(variant, "localcsi-controller")["spec"]["template"]["spec"])["controller"]
    assert cli.parse_args(controller["args"]).leader_elect
    assert controller["env"] == [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]


def test_storage_classes_name_our_driver_and_bind_late() -> None:
    classes = [d for d in rendered("defaults") if d["kind"] == "StorageClass"]
    assert [c["metadata"]["name"] for c in classes] == ["localcsi-lvm", "localcsi-lvm-xfs", "localcsi-lvm-thin"]
    for storage_class in classes:
        assert storage_class["provisioner"] == DRIVER_NAME
        assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
        assert storage_class["reclaimPolicy"] == "Delete" and storage_class["allowVolumeExpansion"] is True
        assert storage_class["parameters"]["volumeType"] == "LVM"
    (snapshot_class,) = [d for d in rendered("defaults") if d["kind"] == "VolumeSnapshotClass"]
    assert snapshot_class["driver"] == DRIVER_NAME and snapshot_class["deletionPolicy"] == "Delete"


def test_the_csi_driver_object() -> None:
    (driver,) = [d for d in rendered("defaults") if d["kind"] == "CSIDriver"]
    assert driver["metadata"]["name"] == DRIVER_NAME
    assert driver["spec"] == {
        "attachRequired": False,
        "podInfoOnMount": True,
        "storageCapacity": True,
        "fsGroupPolicy": "File",
        "volumeLifecycleModes": ["Persistent", "Ephemeral"],
    }
