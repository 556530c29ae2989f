"""The Helm chart deploy/helm/localcsi: it lints, renders well-formed objects with its defaults and with
every optional part on or off, each value does what it says and is documented, and its versions are the
project's and the test suite's."""

from __future__ import annotations

import functools
import re
import subprocess
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pod_spec import all_containers

from localcsi import __version__
from localcsi.testing.install import load_project_script
from localcsi.testing.tools import SIDECAR_IMAGES, tool_path

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "localcsi"
CI_VALUES = CHART / "ci"
INSTALL_DOCS = REPO / "docs" / "install.md"
NAMESPACE = "localcsi-system"
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "CSIDriver",
    "StorageClass",
    "VolumeSnapshotClass",
    "NodeLocalStorageInitConfig",
    "MutatingWebhookConfiguration",
}
# values.yaml key of each sidecar -> its tool name in localcsi.testing.tools.
SIDECAR_KEYS = {
    "csiProvisioner": "csi-provisioner",
    "csiResizer": "csi-resizer",
    "csiSnapshotter": "csi-snapshotter",
    "snapshotController": "snapshot-controller",
}


GENERATE = load_project_script("deploy/generate.py")
VARIANTS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "all-on": ("--values", str(CI_VALUES / "all-on-values.yaml")),
    "all-off": ("--values", str(CI_VALUES / "all-off-values.yaml")),
}
Object = dict[str, Any]


@functools.cache
def render(*values: str, namespace: str = NAMESPACE) -> tuple[Object, ...]:
    text = str(GENERATE.template(values, namespace=namespace, crds=True))
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def key(doc: Object) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def keys(objects: tuple[Object, ...]) -> set[tuple[str, str, str]]:
    return {key(doc) for doc in objects}


def default_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


# -- helm itself ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_is_clean(variant: str) -> None:
    argv = [str(tool_path("helm")), "lint", "--strict", str(CHART), *VARIANTS[variant]]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_the_values_schema_refuses_unknown_keys_and_bad_values() -> None:
    for bad in ("extender.enable=true", "logLevel=verbose", "extender.strategy=random", "node.agent.resyncSeconds=0"):
        with pytest.raises(RuntimeError, match="values don't meet the specifications"):
            GENERATE.template(("--set", bad))


# -- versions ---------------------------------------------------------------------------------------


def test_chart_and_app_version_are_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["version"] == chart["appVersion"] == project == __version__
    assert default_values()["image"] == {
        "repository": "ghcr.io/localcsi/localcsi",
        "tag": "",
        "pullPolicy": "IfNotPresent",
    }


def containers(objects: tuple[Object, ...]) -> Iterator[Object]:
    for doc in objects:
        if doc["kind"] in ("Deployment", "DaemonSet"):
            yield from all_containers(doc["spec"]["template"]["spec"])


def test_default_images_are_this_version_and_the_sidecars_the_tests_build() -> None:
    sidecars = default_values()["sidecars"]
    assert {SIDECAR_KEYS[name]: entry["image"] for name, entry in sidecars.items()} == SIDECAR_IMAGES
    images = {container["image"] for container in containers(render())}
    assert images == {f"ghcr.io/localcsi/localcsi:{__version__}", *SIDECAR_IMAGES.values()}
    assert {container["imagePullPolicy"] for container in containers(render())} == {"IfNotPresent"}


def test_image_values_reach_every_container() -> None:
    images = {container["image"] for container in containers(render(*VARIANTS["all-on"]))}
    assert images == {
        "registry.example.com/storage/localcsi:0.1.0-test",
        *(f"registry.example.com/sig-storage/{name}" for name in ("csi-provisioner:v5.2.0", "csi-resizer:v1.12.0")),
        *(f"registry.example.com/sig-storage/{name}:v8.2.0" for name in ("csi-snapshotter", "snapshot-controller")),
    }
    assert {container["imagePullPolicy"] for container in containers(render(*VARIANTS["all-on"]))} == {"Always"}


# -- well-formed objects ----------------------------------------------------------------------------


def pod_problems(doc: Object, service_accounts: set[str]) -> Iterator[str]:
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    template = doc["spec"]["template"]
    selector = doc["spec"]["selector"]["matchLabels"]
    if not selector.items() <= template["metadata"]["labels"].items():
        yield f"{name}: the selector does not match the pod labels"
    spec = template["spec"]
    if spec.get("serviceAccountName") not in service_accounts:
        yield f"{name}: ServiceAccount {spec.get('serviceAccountName')} is not rendered"
    volumes = {volume["name"] for volume in spec.get("volumes", [])}
    for container in all_containers(spec):
        where = f"{name}/{container['name']}"
        if not container.get("image") or not container.get("args"):
            yield f"{where}: no image or no args"
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                yield f"{where}: mounts undeclared volume {mount['name']}"
        ports = {port["name"] for port in container.get("ports", [])}
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(probe_name, {})
            port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                yield f"{where}: {probe_name} names port {port}, which it does not declare"
        for env in container.get("env", []):
            if set(env) != {"name", "valueFrom"} and set(env) != {"name", "value"}:
                yield f"{where}: env {env}"
    names = [container["name"] for container in all_containers(spec)]
    if len(set(names)) != len(names):
        yield f"{name}: two containers of one name"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_render_is_well_formed(variant: str) -> None:
    objects = render(*VARIANTS[variant])
    problems = [
        f"{key(doc)}: {name} missing"
        for doc in objects
        for name in ("apiVersion", "kind", "metadata")
        if not doc.get(name)
    ]
    assert not [k for k, count in Counter(map(key, objects)).items() if count > 1], "an object rendered twice"
    service_accounts = {doc["metadata"]["name"] for doc in objects if doc["kind"] == "ServiceAccount"}
    pods: dict[str, dict[str, str]] = {}
    for doc in objects:
        namespace = doc["metadata"].get("namespace")
        if (doc["kind"] in CLUSTER_SCOPED) == (namespace is not None):
            problems.append(f"{key(doc)}: namespace {namespace!r} on a {doc['kind']}")
        elif namespace not in (None, NAMESPACE):
            problems.append(f"{key(doc)}: outside the release namespace")
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "localcsi":
            problems.append(f"{key(doc)}: not labelled part-of localcsi")
        if doc["kind"] in ("Deployment", "DaemonSet"):
            problems.extend(pod_problems(doc, service_accounts))
            pods[doc["metadata"]["name"]] = doc["spec"]["template"]["metadata"]["labels"]
        for subject in doc.get("subjects", []):
            if subject["kind"] == "ServiceAccount" and subject["name"] not in service_accounts:
                problems.append(f"{key(doc)}: binds ServiceAccount {subject['name']}, which is not rendered")
    for doc in objects:
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
        elif doc["kind"] == "NetworkPolicy":
            selector = doc["spec"]["podSelector"]["matchLabels"]
        else:
            continue
        if not any(selector.items() <= labels.items() for labels in pods.values()):
            problems.append(f"{key(doc)}: selects no rendered pod")
    assert not problems, "\n".join(problems)


RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_the_node_pods_are_privileged(variant: str) -> None:
    """The Deployments run as non-root, each container (init containers too) with no privilege escalation, no
    capabilities and a read-only root; only the node DaemonSet's containers are privileged (LVM, mounts)."""
    for doc in render(*VARIANTS[variant]):
        if doc["kind"] not in ("Deployment", "DaemonSet"):
            continue
        name = doc["metadata"]["name"]
        spec = doc["spec"]["template"]["spec"]
        if doc["kind"] == "Deployment":
            assert spec["securityContext"] == RESTRICTED_POD, name
        expected = RESTRICTED_CONTAINER if doc["kind"] == "Deployment" else {"privileged": True}
        for container in all_containers(spec):
            assert container["securityContext"] == expected, f"{name}/{container['name']}"


# -- optional parts ---------------------------------------------------------------------------------

EXTENDER_WORKLOAD = {
    ("Deployment", NAMESPACE, "localcsi-extender"),
    ("Service", NAMESPACE, "localcsi-extender"),
    ("NetworkPolicy", NAMESPACE, "localcsi-extender"),
}
SNAPSHOT_CONTROLLER = {
    ("Deployment", NAMESPACE, "localcsi-snapshot-controller"),
    ("ServiceAccount", NAMESPACE, "localcsi-snapshot-controller"),
    ("ClusterRole", "", "localcsi-snapshot-controller"),
    ("ClusterRoleBinding", "", "localcsi-snapshot-controller"),
    ("Role", NAMESPACE, "localcsi-snapshot-controller-leader-election"),
    ("RoleBinding", NAMESPACE, "localcsi-snapshot-controller-leader-election"),
}
STORAGE_CLASSES = {("StorageClass", "", name) for name in ("localcsi-lvm", "localcsi-lvm-xfs", "localcsi-lvm-thin")}


@pytest.mark.parametrize(
    ("setting", "removed"),
    [
        (("--set", "extender.enabled=false"), EXTENDER_WORKLOAD),
        (("--set-json", "extender.allowedCIDRs=[]"), {("NetworkPolicy", NAMESPACE, "localcsi-extender")}),
        (("--set", "snapshotController.enabled=false"), SNAPSHOT_CONTROLLER),
        (("--set", "snapshotClass.enabled=false"), {("VolumeSnapshotClass", "", "localcsi-lvm")}),
        (("--set", "initConfig.enabled=false"), {("NodeLocalStorageInitConfig", "", "localcsi")}),
        (("--set-json", "storageClasses=[]"), STORAGE_CLASSES),
    ],
    ids=lambda value: value[1] if isinstance(value, tuple) else "",
)
def test_each_optional_part_follows_its_value(setting: tuple[str, str], removed: set[tuple[str, str, str]]) -> None:
    default = keys(render())
    assert removed <= default
    assert keys(render(*setting)) == default - removed


def test_the_namespace_object_only_when_asked_for() -> None:
    assert not [doc for doc in render() if doc["kind"] == "Namespace"]
    (namespace,) = [doc for doc in render("--set", "namespace.create=true") if doc["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert keys(render("--set", "namespace.create=true")) == keys(render()) | {key(namespace)}


def test_every_optional_part_off_leaves_the_driver_itself() -> None:
    assert {kind for kind, _, _ in keys(render(*VARIANTS["all-off"]))} == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "CSIDriver",
        "DaemonSet",
        "Deployment",
    }
    deployments = {name for kind, _, name in keys(render(*VARIANTS["all-off"])) if kind == "Deployment"}
    assert deployments == {"localcsi-csi-controller", "localcsi-controller"}
    # The extender's read-only ClusterRole stays for the layouts of deploy/scheduler.
    assert ("ClusterRole", "", "localcsi-extender") in keys(render(*VARIANTS["all-off"]))


def test_another_release_namespace_is_used_throughout() -> None:
    text = str(GENERATE.template((), namespace="storage", crds=True))
    assert "localcsi-system" not in text
    for doc in render(namespace="storage"):
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == "storage", key(doc)
        for subject in doc.get("subjects", []):
            assert subject["namespace"] == "storage", key(doc)


def test_storage_class_items_take_their_optional_fields() -> None:
    classes = {doc["metadata"]["name"]: doc for doc in render(*VARIANTS["all-on"]) if doc["kind"] == "StorageClass"}
    fast = classes["localcsi-fast"]
    assert fast["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (fast["reclaimPolicy"], fast["volumeBindingMode"], fast["allowVolumeExpansion"]) == (
        "Retain",
        "Immediate",
        False,
    )
    assert fast["parameters"]["stripes"] == "2", "StorageClass parameters are strings"
    plain = classes["localcsi-block"]
    assert "annotations" not in plain["metadata"]
    assert (plain["reclaimPolicy"], plain["volumeBindingMode"], plain["allowVolumeExpansion"]) == (
        "Delete",
        "WaitForFirstConsumer",
        True,
    )


def test_init_config_entries_without_a_selector_apply_to_every_node() -> None:
    (config,) = [doc for doc in render(*VARIANTS["all-on"]) if doc["kind"] == "NodeLocalStorageInitConfig"]
    first, second = config["spec"]["nodesConfig"]
    assert first["selector"] == {"matchLabels": {"localcsi.io/init-disk": "vdb"}}
    assert second == {
        "selector": {},
        "resourceToBeInited": {"vgs": [{"name": "localcsi-ssd", "devices": ["/dev/nvme0n1"]}]},
    }
    (default,) = [doc for doc in render() if doc["kind"] == "NodeLocalStorageInitConfig"]
    assert default["metadata"]["name"] == "localcsi"
    assert default["spec"] == {"globalConfig": {"listConfig": {"vgs": {"include": ["^localcsi-.+$"]}}}}


def test_node_placement_and_resources_values_reach_their_pods() -> None:
    objects = {
        doc["metadata"]["name"]: doc
        for doc in render(*VARIANTS["all-on"])
        if doc["kind"] in ("Deployment", "DaemonSet")
    }
    values = yaml.safe_load((CI_VALUES / "all-on-values.yaml").read_text())
    for section, name in (
        ("node", "localcsi-node"),
        ("csiController", "localcsi-csi-controller"),
        ("controller", "localcsi-controller"),
        ("extender", "localcsi-extender"),
        ("webhook", "localcsi-webhook"),
        ("snapshotController", "localcsi-snapshot-controller"),
    ):
        spec = objects[name]["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == values[section]["nodeSelector"], name
        assert spec["tolerations"] == values[section]["tolerations"], name
    resources = {
        (name, container["name"]): container.get("resources")
        for name, doc in objects.items()
        for container in all_containers(doc["spec"]["template"]["spec"])
    }
    assert resources == {
        ("localcsi-node", "plugin"): values["node"]["plugin"]["resources"],
        ("localcsi-node", "agent"): values["node"]["agent"]["resources"],
        ("localcsi-csi-controller", "plugin"): values["csiController"]["resources"],
        ("localcsi-csi-controller", "csi-provisioner"): values["sidecars"]["csiProvisioner"]["resources"],
        ("localcsi-csi-controller", "csi-resizer"): values["sidecars"]["csiResizer"]["resources"],
        ("localcsi-csi-controller", "csi-snapshotter"): values["sidecars"]["csiSnapshotter"]["resources"],
        ("localcsi-controller", "controller"): values["controller"]["resources"],
        ("localcsi-extender", "extender"): values["extender"]["resources"],
        ("localcsi-webhook", "webhook"): values["webhook"]["resources"],
        ("localcsi-snapshot-controller", "snapshot-controller"): values["sidecars"]["snapshotController"]["resources"],
    }
    (policy,) = [doc for doc in render(*VARIANTS["all-on"]) if doc["kind"] == "NetworkPolicy"]
    assert [peer["ipBlock"]["cidr"] for peer in policy["spec"]["ingress"][0]["from"]] == values["extender"][
        "allowedCIDRs"
    ]


# -- values: each one used and documented -----------------------------------------------------------


def templates_text() -> str:
    return "\n".join(path.read_text() for path in sorted((CHART / "templates").rglob("*")) if path.is_file())


def value_paths(values: dict[str, Any], text: str, prefix: str = "") -> Iterator[str]:
    """The dotted paths of values.yaml the templates must name: a map named whole (`.Values.a.b` and no
    `.Values.a.b.c`) is one path; otherwise each of its keys is, down to the leaves."""
    for name, value in values.items():
        path = f"{prefix}{name}"
        named_whole = re.search(rf"\.Values\.{re.escape(path)}(?![\w.])", text) is not None
        if isinstance(value, dict) and value and not named_whole:
            yield from value_paths(value, text, f"{path}.")
        else:
            yield path


def test_every_value_is_used_by_a_template() -> None:
    text = templates_text()
    unused = [
        path
        for path in value_paths(default_values(), text)
        if not re.search(rf"\.Values\.{re.escape(path)}(?![\w])", text)
    ]
    assert not unused, f"values no template reads: {unused}"


def test_every_value_is_in_the_install_docs_table() -> None:
    table = INSTALL_DOCS.read_text().partition("## Values")[2].partition("\n## ")[0]
    missing = [path for path in value_paths(default_values(), templates_text()) if f"`{path}`" not in table]
    assert not missing, f"docs/install.md#values does not describe {missing}"


def test_mount_point_dirs_reach_the_plugin_and_the_agent_at_the_same_path() -> None:
    (node,) = [
        doc
        for doc in render("--set", "node.mountPointDirs={/mnt/localcsi,/data/disks}")
        if doc["kind"] == "DaemonSet" and doc["metadata"]["name"] == "localcsi-node"
    ]
    spec = node["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for index, path in enumerate(("/mnt/localcsi", "/data/disks")):
        assert volumes[f"mount-points-{index}"]["hostPath"] == {"path": path, "type": "DirectoryOrCreate"}
    for container in spec["containers"]:
        mounts = [mount for mount in container["volumeMounts"] if mount["name"].startswith("mount-points-")]
        assert [(m["mountPath"], m["mountPropagation"]) for m in mounts] == [
            ("/mnt/localcsi", "HostToContainer"),
            ("/data/disks", "HostToContainer"),
        ], container["name"]
    (default,) = [doc for doc in render() if doc["kind"] == "DaemonSet" and doc["metadata"]["name"] == "localcsi-node"]
    names = [volume["name"] for volume in default["spec"]["template"]["spec"]["volumes"]]
    assert not [name for name in names if name.startswith("mount-points-")], "nothing mounted unless asked"
    for bad in ("node.mountPointDirs={mnt/relative}", "node.mountPointDirs={/mnt/trailing/}"):
        with pytest.raises(RuntimeError, match="values don't meet the specifications"):
            GENERATE.template(("--set", bad))


def _deployments(*values: str) -> dict[str, Object]:
    return {doc["metadata"]["name"]: doc for doc in render(*values) if doc["kind"] == "Deployment"}


def test_replicas_and_the_capacity_poll_interval_are_what_the_values_say() -> None:
    names = ("localcsi-csi-controller", "localcsi-controller", "localcsi-snapshot-controller")
    defaults = _deployments()
    assert [defaults[name]["spec"]["replicas"] for name in names] == [2, 2, 2]
    one_node = _deployments(
        "--set", "csiController.replicas=1", "--set", "controller.replicas=1", "--set", "snapshotController.replicas=1",
        "--set", "csiController.capacityPollInterval=10s",
    )  # fmt: skip
    assert [one_node[name]["spec"]["replicas"] for name in names] == [1, 1, 1]

    def provisioner_args(deployments: dict[str, Object]) -> list[str]:
        containers = deployments["localcsi-csi-controller"]["spec"]["template"]["spec"]["containers"]
        (provisioner,) = [c for c in containers if c["name"] == "csi-provisioner"]
        return [arg for arg in provisioner["args"] if arg.startswith("--capacity-poll-interval")]

    assert provisioner_args(defaults) == ["--capacity-poll-interval=1m"]
    assert provisioner_args(one_node) == ["--capacity-poll-interval=10s"]
    for bad in ("csiController.replicas=0", "csiController.capacityPollInterval=soon", "controller.replicas=0"):
        with pytest.raises(RuntimeError, match="values don't meet the specifications"):
            GENERATE.template(("--set", bad))
