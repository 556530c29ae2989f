"""The real kube-apiserver refuses invalid NodeLocalStorage and NodeLocalStorageInitConfig objects with
HTTP 422, naming the field and the problem; the examples in docs/crds.md are accepted, round-trip, and
show in `kubectl get`; status is written only through /status."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcsi.k8s.resources import NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG, CustomResources, Kind
from localcsi.testing.cluster import KubeCluster

DOCS = Path(__file__).resolve().parents[2] / "docs" / "crds.md"
# Added by the apiserver whenever schema errors stop the CEL rules from running.
NOT_CHECKED_NOTE = "some validation rules were not checked because the object was invalid"

Object = dict[str, Any]
FieldPath = tuple[str | int, ...]
DELETE = object()


# The examples' own names (node-1, localcsi) are what other cluster-tier modules use for real
# objects in the same session cluster, so the examples are created under these names instead.
EXAMPLE_NAMES = {"NodeLocalStorage": "crd-example-node", "NodeLocalStorageInitConfig": "crd-example-config"}


def documented_example(kind: Kind) -> Object:
    """The first ```yaml block of docs/crds.md that is a full object of `kind`, renamed."""
    for block in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and document.get("kind") == kind.kind and "spec" in document:
            document["metadata"]["name"] = EXAMPLE_NAMES[kind.kind]
            if "nodeName" in document["spec"]:
                document["spec"]["nodeName"] = EXAMPLE_NAMES[kind.kind]
            return document
    raise AssertionError(f"docs/crds.md has no full {kind.kind} example")


def changed(obj: Object, path: FieldPath, value: object) -> Object:
    """A deep copy of `obj` with the value at `path` replaced (or removed, for DELETE)."""
    result = copy.deepcopy(obj)
    parent: Any = result
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)
    return result


@dataclass(frozen=True)
class Cause:
    field: str
    message: str


@dataclass(frozen=True)
class Case:
    """One defect in an otherwise valid documented example, and the causes the apiserver must give."""

    name: str
    kind: Kind
    path: FieldPath
    value: object
    expected: tuple[Cause, ...]

    def __str__(self) -> str:
        return self.name


def case(name: str, kind: Kind, path: FieldPath, value: object, *causes: tuple[str, str]) -> Case:
    return Case(name, kind, path, value, tuple(Cause(field, message) for field, message in causes))


NLS, NLSC = NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG
VG_NAME = "must be an LVM VolumeGroup name: 1-127 characters from A-Z a-z 0-9 + _ . -"
DEVICE_PATH = "must be a device path under /dev/"
REGEX = "evaluating rule: must be a valid regular expression (RE2 syntax)"
NOT_NEGATIVE = "should be greater than or equal to 0"
AT_MOST_90 = "should be less than or equal to 90"
QUANTITY = "should match '^[0-9]+"
OPERATOR_VALUES = "operators In and NotIn need at least one value; Exists and DoesNotExist take none"
RESERVED = ("spec", "reservedSpace")
LIST_CONFIG = ("spec", "listConfig")
INIT_VG = ("spec", "resourceToBeInited", "vgs", 0)
MOUNT = ("spec", "resourceToBeInited", "mountpoints", 0)
SELECTOR = ("spec", "nodesConfig", 0, "selector")
EXPRESSION_0 = "spec.nodesConfig[0].selector.matchExpressions[0]"

SPEC_CASES = [
    case("negative size", NLS, (*RESERVED, 0, "size"), -1, ("spec.reservedSpace[0].size", NOT_NEGATIVE)),
    case("negative size quantity", NLS, (*RESERVED, 0, "size"), "-10Gi", ("spec.reservedSpace[0].size", QUANTITY)),
    case("size not a quantity", NLS, (*RESERVED, 0, "size"), "10 GB", ("spec.reservedSpace[0].size", QUANTITY)),
    case("percent 200", NLS, (*RESERVED, 0, "percent"), 200, ("spec.reservedSpace[0].percent", AT_MOST_90)),
    case(
        "reservation without an amount",
        NLS,
        (*RESERVED, 1),
        {"vgName": "share"},
        ("spec.reservedSpace[1]", "set size, percent or both"),
    ),
    case(
        "duplicate reservation",
        NLS,
        (*RESERVED, 1),
        {"vgName": "localcsi-pool-0", "percent": 1},
        ("spec.reservedSpace[1]", 'Duplicate value: {"vgName":"localcsi-pool-0"}'),
    ),
    case(
        "invalid regex",
        NLS,
        (*LIST_CONFIG, "devices", "include", 0),
        "^/dev/vd[c-",
        ("spec.listConfig.devices.include[0]", f"error parsing regexp: missing closing ]: `[c-` {REGEX}"),
    ),
    case(
        "invalid regex repetition",
        NLS,
        (*LIST_CONFIG, "vgs", "exclude", 0),
        "*pool",
        ("spec.listConfig.vgs.exclude[0]", f"missing argument to repetition operator: `*` {REGEX}"),
    ),
    case(
        "too many include entries",
        NLS,
        (*LIST_CONFIG, "vgs", "include"),
        [f"^pool-{i}$" for i in range(65)],
        ("spec.listConfig.vgs.include", "Too many: 65: must have at most 64 items"),
    ),
    case(
        "regex too long",
        NLS,
        (*LIST_CONFIG, "mountPoints", "include", 0),
        "^/mnt/" + "a" * 251,
        ("spec.listConfig.mountPoints.include[0]", "Too long: may not be more than 256 bytes"),
    ),
    case(
        "VG name with shell metacharacters",
        NLS,
        (*INIT_VG, "name"),
        "pool;reboot",
        ("spec.resourceToBeInited.vgs[0].name", VG_NAME),
    ),
    case("VG name ..", NLS, (*INIT_VG, "name"), "..", ("spec.resourceToBeInited.vgs[0].name", VG_NAME)),
    case("VG name starting with -", NLS, (*RESERVED, 0, "vgName"), "-pool", ("spec.reservedSpace[0].vgName", VG_NAME)),
    case(
        "relative device path",
        NLS,
        (*INIT_VG, "devices", 0),
        "vdb",
        ("spec.resourceToBeInited.vgs[0].devices[0]", DEVICE_PATH),
    ),
    case(
        "device path leaving /dev",
        NLS,
        (*INIT_VG, "devices", 0),
        "/dev/../etc/shadow",
        ("spec.resourceToBeInited.vgs[0].devices[0]", DEVICE_PATH),
    ),
    case(
        "VG without devices",
        NLS,
        (*INIT_VG, "devices"),
        [],
        ("spec.resourceToBeInited.vgs[0].devices", "should have at least 1 items"),
    ),
    case("missing nodeName", NLS, ("spec", "nodeName"), DELETE, ("spec.nodeName", "Required value")),
    case(
        "name is not the node's",
        NLS,
        ("metadata", "name"),
        "node-2",
        ("spec.nodeName", "metadata.name must equal spec.nodeName: one NodeLocalStorage per Node, named after it"),
    ),
    case(
        "nodeName not a node name",
        NLS,
        ("spec", "nodeName"),
        "Node_1",
        ("spec.nodeName", "must be a Node name: lowercase letters, digits, '-' and '.'"),
        ("spec.nodeName", "metadata.name must equal spec.nodeName"),
    ),
    case(
        "unknown fsType",
        NLS,
        (*MOUNT, "fsType"),
        "btrfs",
        (
            "spec.resourceToBeInited.mountpoints[0].fsType",
            'Unsupported value: "btrfs": supported values: "ext4", "xfs"',
        ),
    ),
    case(
        "relative mount path",
        NLS,
        (*MOUNT, "path"),
        "mnt/disk1",
        ("spec.resourceToBeInited.mountpoints[0].path", "must be an absolute path other than /"),
    ),
    case(
        "mount options smuggled in one entry",
        NLS,
        (*MOUNT, "options", 0),
        "rw,exec",
        ("spec.resourceToBeInited.mountpoints[0].options[0]", "one mount option per entry, without commas or spaces"),
    ),
    case(
        "selector with a bad operator",
        NLSC,
        (*SELECTOR, "matchExpressions", 0, "operator"),
        "Contains",
        (f"{EXPRESSION_0}.operator", 'Unsupported value: "Contains": supported values: "In", "NotIn", "Exists"'),
    ),
    case("In without values", NLSC, (*SELECTOR, "matchExpressions", 0, "values"), [], (EXPRESSION_0, OPERATOR_VALUES)),
    case(
        "DoesNotExist with values",
        NLSC,
        (*SELECTOR, "matchExpressions", 1, "values"),
        ["x"],
        ("spec.nodesConfig[0].selector.matchExpressions[1]", OPERATOR_VALUES),
    ),
    case(
        "label key with a space",
        NLSC,
        (*SELECTOR, "matchLabels"),
        {"bad key": "x"},
        ("spec.nodesConfig[0].selector.matchLabels", "each key must be a label key"),
    ),
    case(
        "label value too long",
        NLSC,
        (*SELECTOR, "matchLabels"),
        {"zone": "z" * 64},
        ("spec.nodesConfig[0].selector.matchLabels.zone", "Too long: may not be more than 63 bytes"),
    ),
    case("nodesConfig without selector", NLSC, SELECTOR, DELETE, ("spec.nodesConfig[0].selector", "Required value")),
    case(
        "too many nodesConfig entries",
        NLSC,
        ("spec", "nodesConfig"),
        [{"selector": {}}] * 17,
        ("spec.nodesConfig", "Too many: 17: must have at most 16 items"),
    ),
    case(
        "global percent 91",
        NLSC,
        ("spec", "globalConfig", "reservedSpace", 0, "percent"),
        91,
        ("spec.globalConfig.reservedSpace[0].percent", AT_MOST_90),
    ),
    case(
        "node config device outside /dev",
        NLSC,
        ("spec", "nodesConfig", 0, "resourceToBeInited", "vgs", 0, "devices", 1),
        "/tmp/disk.img",
        ("spec.nodesConfig[0].resourceToBeInited.vgs[0].devices[1]", DEVICE_PATH),
    ),
]

DEVICE_0 = ("status", "nodeStorageInfo", "deviceInfo", 0)
VG_0 = ("status", "nodeStorageInfo", "volumeGroups", 0)
STATUS_CASES = [
    case(
        "unknown mediaType",
        NLS,
        (*DEVICE_0, "mediaType"),
        "nvme",
        ("status.nodeStorageInfo.deviceInfo[0].mediaType", 'Unsupported value: "nvme": supported values: "ssd", "hdd"'),
    ),
    case(
        "unknown disk condition",
        NLS,
        (*VG_0, "condition"),
        "DiskBroken",
        ("status.nodeStorageInfo.volumeGroups[0].condition", 'Unsupported value: "DiskBroken"'),
    ),
    case(
        "negative allocatable",
        NLS,
        (*VG_0, "allocatable"),
        -4096,
        ("status.nodeStorageInfo.volumeGroups[0].allocatable", NOT_NEGATIVE),
    ),
    case(
        "condition status Maybe",
        NLS,
        ("status", "conditions", 0, "status"),
        "Maybe",
        ("status.conditions[0].status", 'Unsupported value: "Maybe": supported values: "True", "False", "Unknown"'),
    ),
    case(
        "unknown updateStatus",
        NLS,
        ("status", "filteredStorageInfo", "updateStatusInfo", "updateStatus"),
        "done",
        ("status.filteredStorageInfo.updateStatusInfo.updateStatus", 'Unsupported value: "done"'),
    ),
    case("negative node count", NLSC, ("status", "nodes"), -1, ("status.nodes", NOT_NEGATIVE)),
]


class Objects:
    """The raw CustomObjectsApi for our kinds (errors stay ApiException, so the 422 causes are visible);
    every object created is deleted at the end."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = client.CustomObjectsApi(api)
        self.created: list[tuple[Kind, str]] = []

    def _scope(self, kind: Kind) -> tuple[str, str, str]:
        return kind.group, kind.version, kind.plural

    def create(self, kind: Kind, body: Object) -> Object:
        created: Object = self.api.create_cluster_custom_object(*self._scope(kind), body)
        self.created.append((kind, created["metadata"]["name"]))
        return created

    def get(self, kind: Kind, name: str) -> Object:
        found: Object = self.api.get_cluster_custom_object(*self._scope(kind), name)
        return found

    def patch_status(self, kind: Kind, name: str, status: Object) -> Object:
        call = self.api.patch_cluster_custom_object_status
        patched: Object = call(*self._scope(kind), name, {"status": status})
        return patched

    def delete_created(self) -> None:
        for kind, name in reversed(self.created):
            try:
                self.api.delete_cluster_custom_object(*self._scope(kind), name)
            except ApiException as error:
                if error.status != 404:
                    raise
        self.created.clear()


@pytest.fixture
def objects(kube_cluster: KubeCluster) -> Iterator[Objects]:
    store = Objects(kube_cluster.api_client())
    yield store
    store.delete_created()


def spec_only(obj: Object) -> Object:
    return {key: value for key, value in obj.items() if key != "status"}


def rejection_causes(request: Callable[[], object]) -> list[Cause]:
    with pytest.raises(ApiException) as caught:
        request()
    error = caught.value
    assert error.status == 422, f"expected 422 Invalid, got {error.status}: {error.body}"
    body = json.loads(error.body)
    assert body["reason"] == "Invalid", body
    causes = [Cause(c.get("field", ""), c.get("message", "")) for c in body["details"]["causes"]]
    return [cause for cause in causes if NOT_CHECKED_NOTE not in cause.message]


def assert_causes(actual: list[Cause], expected: tuple[Cause, ...]) -> None:
    """Exactly the expected causes: each on its field with a message containing the expected text."""
    unmatched = list(actual)
    for want in expected:
        match = next((c for c in unmatched if c.field == want.field and want.message in c.message), None)
        assert match is not None, f"no cause like {want} in {actual}"
        unmatched.remove(match)
    assert not unmatched, f"unexpected causes {unmatched}"


def test_at_least_twelve_distinct_invalid_objects_are_covered() -> None:
    names = [case.name for case in SPEC_CASES + STATUS_CASES]
    fields = {cause.field for case in SPEC_CASES + STATUS_CASES for cause in case.expected}
    assert len(set(names)) == len(names)
    assert len(names) >= 12 and len(fields) >= 12


@pytest.mark.parametrize("case", SPEC_CASES, ids=str)
def test_apiserver_rejects_invalid_spec(objects: Objects, case: Case) -> None:
    invalid = changed(spec_only(documented_example(case.kind)), case.path, case.value)

    causes = rejection_causes(lambda: objects.create(case.kind, invalid))

    assert_causes(causes, case.expected)
    name = invalid["metadata"]["name"]
    with pytest.raises(ApiException) as missing:
        objects.get(case.kind, name)
    assert missing.value.status == 404, f"{case.kind.kind} {name} was stored despite the 422"


@pytest.mark.parametrize("case", STATUS_CASES, ids=str)
def test_apiserver_rejects_invalid_status(objects: Objects, case: Case) -> None:
    example = documented_example(case.kind)
    name = objects.create(case.kind, spec_only(example))["metadata"]["name"]
    invalid_status = changed(example, case.path, case.value)["status"]

    causes = rejection_causes(lambda: objects.patch_status(case.kind, name, invalid_status))

    assert_causes(causes, case.expected)
    assert "status" not in objects.get(case.kind, name), "a rejected status was stored"


@pytest.mark.parametrize("kind", [NLS, NLSC], ids=lambda kind: kind.kind)
def test_documented_example_is_accepted_and_round_trips(kube_cluster: KubeCluster, kind: Kind) -> None:
    example = documented_example(kind)
    resources = CustomResources(kube_cluster.kube_api(), kind)
    name = example["metadata"]["name"]
    try:
        created = resources.create(spec_only(example))
        assert created["spec"] == example["spec"]
        assert "status" not in created, "status sent on create must be ignored (status subresource)"

        written = resources.patch_status(name, example["status"])
        assert written["status"] == example["status"]
        assert written["spec"] == example["spec"]
        stored = resources.get(name)
        assert stored is not None
        assert stored["spec"] == example["spec"] and stored["status"] == example["status"]
    finally:
        resources.delete(name)


def test_status_is_written_only_through_the_status_subresource(kube_cluster: KubeCluster) -> None:
    example = documented_example(NLS)
    resources = CustomResources(kube_cluster.kube_api(), NLS)
    name = example["metadata"]["name"]
    try:
        created = resources.create(example)  # with a status: dropped
        assert "status" not in created

        replaced = resources.replace({**created, "status": example["status"]})
        assert "status" not in replaced, "status written through the main resource"

        sneaky_spec = changed(example["spec"], ("listConfig", "vgs", "include"), ["^everything$"])
        status_call = resources.replace_status({**replaced, "spec": sneaky_spec, "status": example["status"]})
        assert status_call["status"] == example["status"]
        assert status_call["spec"] == example["spec"], "spec written through /status"
        stored = resources.get(name)
        assert stored is not None and stored["spec"] == example["spec"]
    finally:
        resources.delete(name)


def test_unknown_fields_are_pruned(kube_cluster: KubeCluster) -> None:
    example = spec_only(documented_example(NLS))
    resources = CustomResources(kube_cluster.kube_api(), NLS)
    with_extra = changed(example, ("spec", "listConfig", "vgs", "includes"), ["^typo$"])
    with_extra = changed(with_extra, ("spec", "surprise"), {"x": 1})
    try:
        created = resources.create(with_extra)
        assert created["spec"] == example["spec"]
    finally:
        resources.delete(example["metadata"]["name"])


def table(api: client.ApiClient, kind: Kind) -> Object:
    """What `kubectl get` receives: the server-side Table with our printer columns."""
    path = f"/apis/{kind.group}/{kind.version}/{kind.plural}"
    response = api.call_api(
        path,
        "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    result: Object = json.loads(response[0].data)
    return result


NLS_ROW = {
    "Name": EXAMPLE_NAMES["NodeLocalStorage"],
    "Node": EXAMPLE_NAMES["NodeLocalStorage"],
    "Ready": "True",
    "VGs ready": 1,
    "Allocatable": 96632569856,
    "VGs": '["localcsi-pool-0"]',
    "Devices": '["/dev/vdc"]',
}
NLSC_ROW = {"Name": EXAMPLE_NAMES["NodeLocalStorageInitConfig"], "Nodes": 3, "Ready": "True"}


@pytest.mark.parametrize(("kind", "expected"), [(NLS, NLS_ROW), (NLSC, NLSC_ROW)], ids=["nls", "nlsc"])
def test_printer_columns_show_the_documented_example(
    kube_cluster: KubeCluster, kind: Kind, expected: dict[str, object]
) -> None:
    example = documented_example(kind)
    api = kube_cluster.api_client()
    resources = CustomResources(kube_cluster.kube_api(), kind)
    name = example["metadata"]["name"]
    try:
        resources.create(spec_only(example))
        resources.patch_status(name, example["status"])
        result = table(api, kind)
    finally:
        resources.delete(name)
    headers = [column["name"] for column in result["columnDefinitions"]]
    (row,) = [row for row in result["rows"] if row["cells"][0] == name]
    shown = dict(zip(headers, row["cells"], strict=True))
    assert headers[-1] == "Age"
    for column, value in expected.items():
        assert shown[column] == value, f"column {column}: {shown}"


def test_short_names_and_category_are_served(kube_cluster: KubeCluster) -> None:
    resources = client.CustomObjectsApi(kube_cluster.api_client()).get_api_resources("localcsi.io", "v1alpha1")
    by_name = {resource.name: resource for resource in resources.resources}
    assert by_name["nodelocalstorages"].short_names == ["nls"]
    assert by_name["nodelocalstorageinitconfigs"].short_names == ["nlsc"]
    for plural in ("nodelocalstorages", "nodelocalstorageinitconfigs"):
        assert by_name[plural].namespaced is False
        assert "localcsi" in by_name[plural].categories
        assert f"{plural}/status" in by_name
