"""deploy/ as plain YAML: structural, bounded CRD schemas with status subresources, printer columns and
short names (the chart's crds/, the source of deploy/crds); RBAC without Secrets, wildcards or escalation,
bound only to our ServiceAccounts (deploy/rbac, which the cluster tier applies: the chart's default render)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "deploy" / "helm" / "localcsi" / "crds"
RBAC_DIR = REPO / "deploy" / "rbac"
DOCS = REPO / "docs" / "crds.md"
INSTALL_DOCS = REPO / "docs" / "install.md"
NAMESPACE = "localcsi-system"
# External-snapshotter's controller, which the chart runs too; its rules are explained in docs/install.md.
SNAPSHOT_CONTROLLER = "localcsi-snapshot-controller"
OURS = {
    "nodelocalstorage.yaml": ("NodeLocalStorage", "nls"),
    "nodelocalstorageinitconfig.yaml": ("NodeLocalStorageInitConfig", "nlsc"),
}

Schema = dict[str, Any]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*.yaml"))


def crds() -> list[dict[str, Any]]:
    return [doc for path in crd_files() for doc in load_all(path)]


def crd(file_name: str) -> dict[str, Any]:
    (only,) = load_all(CRD_DIR / file_name)
    return only


def root_schema(definition: dict[str, Any]) -> Schema:
    (version,) = definition["spec"]["versions"]
    schema: Schema = version["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node with its path (properties by name, array items as [], map values as {})."""
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def rbac_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted(RBAC_DIR.glob("*.yaml")) for doc in load_all(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rbac_docs() if doc["kind"] == kind]


def rules() -> Iterator[tuple[str, dict[str, Any]]]:
    for role in of_kind("ClusterRole") + of_kind("Role"):
        for rule in role["rules"]:
            yield role["metadata"]["name"], rule


# -- CRDs -------------------------------------------------------------------------------------------


def test_crd_directory_holds_our_two_kinds() -> None:
    names = {path.name for path in crd_files()}
    assert set(OURS) <= names


@pytest.mark.parametrize("definition", crds(), ids=lambda doc: doc["metadata"]["name"])
def test_every_crd_is_cluster_scoped_v1alpha1_with_status_columns_and_short_name(definition: dict[str, Any]) -> None:
    spec = definition["spec"]
    assert definition["apiVersion"] == "apiextensions.k8s.io/v1"
    assert spec["group"] == "localcsi.io" and spec["scope"] == "Cluster"
    assert definition["metadata"]["name"] == f"{spec['names']['plural']}.localcsi.io"
    assert spec["names"]["shortNames"], "kubectl users need a short name"
    assert "localcsi" in spec["names"]["categories"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert len(columns) >= 3 and columns[-1] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }


@pytest.mark.parametrize("definition", crds(), ids=lambda doc: doc["metadata"]["name"])
def test_every_crd_schema_is_structural(definition: dict[str, Any]) -> None:
    for path, node in walk(root_schema(definition)):
        assert "x-kubernetes-preserve-unknown-fields" not in node, f"{path} keeps unknown fields"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node and node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, (
                f"{path} has no type"
            )
        if node.get("type") == "array":
            assert "items" in node, f"{path} is an array without items"


@pytest.mark.parametrize("file_name", sorted(OURS))
def test_our_lists_and_strings_are_bounded(file_name: str) -> None:
    """The apiserver refuses CRDs whose CEL rules could cost too much; it needs every bound to estimate."""
    unbounded = []
    for path, node in walk(root_schema(crd(file_name))):
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
        is_text = node.get("type") == "string" or node.get("x-kubernetes-int-or-string")
        if is_text and not ({"maxLength", "enum", "format"} & node.keys()) and path not in {".apiVersion", ".kind"}:
            unbounded.append(path)
        if node.get("type") == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(path)
    assert not unbounded, f"unbounded lists, strings or maps: {unbounded}"


@pytest.mark.parametrize("file_name", sorted(OURS))
def test_our_kinds_names_and_short_names(file_name: str) -> None:
    kind, short_name = OURS[file_name]
    names = crd(file_name)["spec"]["names"]
    assert (names["kind"], names["shortNames"], names["listKind"]) == (kind, [short_name], f"{kind}List")
    assert names["plural"] == kind.lower() + "s" and names["singular"] == kind.lower()


@pytest.mark.parametrize("file_name", sorted(OURS))
def test_every_cel_rule_says_what_is_wrong(file_name: str) -> None:
    rules_seen = 0
    for path, node in walk(root_schema(crd(file_name))):
        for rule in node.get("x-kubernetes-validations") or []:
            rules_seen += 1
            assert len(rule.get("message", "")) >= 15, f"{path}: rule {rule['rule']!r} needs a clear message"
    assert rules_seen >= 5


def resolve(schema: Schema, json_path: str) -> Schema:
    """The schema node a printer column's JSONPath points at (filters like [?(@.type=="Ready")] step into items)."""
    node = schema
    for part in re.sub(r"\[\?\(.*?\)\]", "[]", json_path).strip(".").split("."):
        name, brackets = part.partition("[")[0], part.count("[")
        if name == "metadata":
            return {"type": "object"}
        node = node["properties"][name]
        for _ in range(brackets):
            node = node["items"]
    return node


@pytest.mark.parametrize("file_name", sorted(OURS))
def test_printer_columns_point_at_fields_of_their_type(file_name: str) -> None:
    definition = crd(file_name)
    schema = root_schema(definition)
    (version,) = definition["spec"]["versions"]
    for column in version["additionalPrinterColumns"]:
        node = resolve(schema, column["jsonPath"])
        if column["type"] == "integer":
            assert node["type"] == "integer", column
        if column["type"] == "date" and not column["jsonPath"].startswith(".metadata"):
            assert node.get("format") == "date-time", column


def test_nls_printer_columns_show_node_readiness_and_capacity() -> None:
    (version,) = crd("nodelocalstorage.yaml")["spec"]["versions"]
    default_columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert default_columns == ["Node", "Ready", "VGs ready", "Allocatable", "Age"]


def test_shared_sections_are_identical_in_both_kinds() -> None:
    """listConfig, resourceToBeInited and reservedSpace mean the same wherever they appear."""
    nls = root_schema(crd("nodelocalstorage.yaml"))["properties"]["spec"]["properties"]
    nlsc = root_schema(crd("nodelocalstorageinitconfig.yaml"))["properties"]["spec"]["properties"]
    global_config = nlsc["globalConfig"]["properties"]
    node_config = nlsc["nodesConfig"]["items"]["properties"]
    for section in ("listConfig", "resourceToBeInited", "reservedSpace"):
        assert nls[section] == global_config[section] == node_config[section], section
    assert set(global_config) == {"listConfig", "resourceToBeInited", "reservedSpace"}
    assert set(node_config) == {"selector", "listConfig", "resourceToBeInited", "reservedSpace"}


def test_open_local_field_names_are_kept() -> None:
    """An open-local user switches by changing apiVersion: the seeds' keys must all be there."""
    spec = root_schema(crd("nodelocalstorage.yaml"))["properties"]["spec"]["properties"]
    status = root_schema(crd("nodelocalstorage.yaml"))["properties"]["status"]["properties"]
    assert set(spec["listConfig"]["properties"]) == {"devices", "vgs", "mountPoints"}
    assert set(spec["resourceToBeInited"]["properties"]) == {"vgs", "mountpoints"}
    assert {"name", "devices"} <= set(spec["resourceToBeInited"]["properties"]["vgs"]["items"]["properties"])
    info = status["nodeStorageInfo"]["properties"]
    assert set(info) == {"deviceInfo", "volumeGroups", "mountPoints"}
    assert {"name", "mediaType", "readOnly", "total", "condition"} <= set(info["deviceInfo"]["items"]["properties"])
    vg = info["volumeGroups"]["items"]["properties"]
    assert {"name", "physicalVolumes", "logicalVolumes", "total", "available", "allocatable", "condition"} <= set(vg)
    assert {"volumeGroups", "devices", "mountPoints", "updateStatusInfo"} <= set(
        status["filteredStorageInfo"]["properties"]
    )


def test_enums_match_the_seeds() -> None:
    schema = root_schema(crd("nodelocalstorage.yaml"))
    enums = {path: node["enum"] for path, node in walk(schema) if "enum" in node}
    assert enums[".status.nodeStorageInfo.deviceInfo[].mediaType"] == ["ssd", "hdd"]
    assert enums[".status.nodeStorageInfo.volumeGroups[].condition"] == ["DiskReady", "DiskFull", "DiskFault"]
    assert enums[".spec.resourceToBeInited.mountpoints[].fsType"] == ["ext4", "xfs"]
    assert enums[".status.conditions[].status"] == ["True", "False", "Unknown"]
    selector = root_schema(crd("nodelocalstorageinitconfig.yaml"))
    operators = {path: node["enum"] for path, node in walk(selector) if path.endswith(".operator")}
    assert list(operators.values()) == [["In", "NotIn", "Exists", "DoesNotExist"]]


# -- RBAC -------------------------------------------------------------------------------------------


def test_namespace_file_defines_localcsi_system() -> None:
    (namespace,) = load_all(RBAC_DIR / "namespace.yaml")
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == NAMESPACE


def test_no_role_touches_secrets_or_uses_wildcards() -> None:
    seen = 0
    for role, rule in rules():
        seen += 1
        assert "secrets" not in rule["resources"], f"{role} grants secrets"
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"{role} uses a wildcard in {key}"
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), f"{role}: {rule}"
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule, f"{role}: {rule}"
        assert set(rule["verbs"]) <= {"get", "list", "watch", "create", "update", "patch", "delete"}, rule
    assert seen >= 10


def test_service_accounts_roles_and_bindings_line_up() -> None:
    accounts = {sa["metadata"]["name"] for sa in of_kind("ServiceAccount")}
    assert accounts == {
        "localcsi-agent",
        "localcsi-controller",
        "localcsi-csi-controller",
        "localcsi-extender",
        SNAPSHOT_CONTROLLER,
    }
    assert {sa["metadata"]["namespace"] for sa in of_kind("ServiceAccount")} == {NAMESPACE}
    cluster_roles = {role["metadata"]["name"] for role in of_kind("ClusterRole")}
    roles = {role["metadata"]["name"] for role in of_kind("Role")}
    assert {role["metadata"]["namespace"] for role in of_kind("Role")} == {NAMESPACE}
    bound = set()
    for binding in of_kind("ClusterRoleBinding") + of_kind("RoleBinding"):
        ref = binding["roleRef"]
        pool = cluster_roles if ref["kind"] == "ClusterRole" else roles
        assert ref["name"] in pool, f"{binding['metadata']['name']} refers to a role not defined here"
        if binding["kind"] == "RoleBinding":
            assert ref["kind"] == "Role" and binding["metadata"]["namespace"] == NAMESPACE
        (subject,) = binding["subjects"]
        assert subject == {"kind": "ServiceAccount", "name": subject["name"], "namespace": NAMESPACE}
        assert subject["name"] in accounts
        bound.add((ref["kind"], ref["name"]))
    assert bound == {("ClusterRole", name) for name in cluster_roles} | {("Role", name) for name in roles}


def verbs_of(role_name: str, resource: str) -> set[str]:
    return {
        verb for role, rule in rules() if role == role_name and resource in rule["resources"] for verb in rule["verbs"]
    }


def test_agent_reads_spec_and_writes_only_status_and_finalizers() -> None:
    assert verbs_of("localcsi-agent", "nodelocalstorages") == {"list", "watch"}
    assert verbs_of("localcsi-agent", "nodelocalstorages/status") == {"patch"}
    assert verbs_of("localcsi-agent", "logicalvolumes") == {"get", "list", "watch", "patch"}
    assert verbs_of("localcsi-agent", "nodes") == set()


def test_extender_writes_nothing() -> None:
    extender_rules = [rule for role, rule in rules() if role == "localcsi-extender"]
    assert extender_rules
    for rule in extender_rules:
        # get only for the PVCs filter reads live when its informer is behind
        expected = {"get", "list", "watch"} if rule["resources"] == ["persistentvolumeclaims"] else {"list", "watch"}
        assert set(rule["verbs"]) == expected, rule


def test_leases_are_granted_only_inside_localcsi_system() -> None:
    for role in of_kind("ClusterRole"):
        assert all("leases" not in rule["resources"] for rule in role["rules"]), role["metadata"]["name"]
    assert verbs_of("localcsi-controller-leader-election", "leases") == {"get", "create", "update"}
    assert verbs_of(f"{SNAPSHOT_CONTROLLER}-leader-election", "leases") == {"get", "create", "update"}


def test_snapshot_controller_gets_only_the_calls_v8_makes_without_group_snapshots() -> None:
    """Upstream's rbac-snapshot-controller.yaml (v8.2.0) minus volume group snapshots, list/watch/update on
    Events, and every verb its code never uses with group snapshots and distributed snapshotting off."""
    granted = {
        (group, resource): set(rule["verbs"])
        for role, rule in rules()
        if role == SNAPSHOT_CONTROLLER
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("", "persistentvolumes"): {"get", "list", "watch"},
        ("", "persistentvolumeclaims"): {"get", "list", "watch", "update"},
        ("", "events"): {"create", "patch"},
        ("snapshot.storage.k8s.io", "volumesnapshotclasses"): {"list", "watch"},
        ("snapshot.storage.k8s.io", "volumesnapshotcontents"): {"list", "watch", "create", "patch", "delete"},
        ("snapshot.storage.k8s.io", "volumesnapshots"): {"get", "list", "watch", "update", "patch"},
        ("snapshot.storage.k8s.io", "volumesnapshots/status"): {"update"},
    }


def test_docs_rbac_table_names_every_granted_resource() -> None:
    rbac_section = DOCS.read_text().partition("## RBAC")[2]
    for role, rule in rules():
        if role.startswith(SNAPSHOT_CONTROLLER):
            continue
        for resource in rule["resources"]:
            assert f"`{resource}`" in rbac_section, f"docs/crds.md#rbac does not explain {resource} ({role})"


def test_install_docs_explain_every_rule_of_the_snapshot_controller() -> None:
    section = INSTALL_DOCS.read_text().partition("## The snapshot controller")[2].partition("\n## ")[0]
    explained = 0
    for role, rule in rules():
        if role.startswith(SNAPSHOT_CONTROLLER):
            for resource in rule["resources"]:
                explained += 1
                assert f"`{resource}`" in section, f"docs/install.md does not explain {resource} ({role})"
    assert explained >= 8
