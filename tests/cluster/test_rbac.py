"""deploy/rbac/ on a real kube-apiserver: each localcsi ServiceAccount may do exactly what docs/crds.md#rbac
(and, for the snapshot controller the chart runs, docs/install.md) lists and nothing else among the resources
that matter (SubjectAccessReviews over every verb), and real requests made with each account's token succeed
or get 403 accordingly (the four localcsi components; the snapshot controller has no token here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcsi.extender.informers import claim_fetcher
from localcsi.k8s.errors import Forbidden
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG, CustomResources
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.cluster_access import SYSTEM_NAMESPACE, service_account_user

AGENT, CONTROLLER, CSI_CONTROLLER, EXTENDER, SNAPSHOT_CONTROLLER = (
    "localcsi-agent",
    "localcsi-controller",
    "localcsi-csi-controller",
    "localcsi-extender",
    "localcsi-snapshot-controller",
)
SA_GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{SYSTEM_NAMESPACE}", "system:authenticated"]
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
READ = ("get", "list", "watch")
INFORMER = ("list", "watch")
EVENTS = ("create", "patch")
ALL_NAMESPACES = ""  # a namespaced resource asked about across all namespaces
OTHER_NAMESPACE = "default"


@dataclass(frozen=True)
class Resource:
    group: str
    name: str  # plural, or plural/subresource
    namespaced: bool = False

    @property
    def plural(self) -> str:
        return self.name.partition("/")[0]

    @property
    def subresource(self) -> str:
        return self.name.partition("/")[2]

    def namespaces(self) -> tuple[str, ...]:
        return (ALL_NAMESPACES, SYSTEM_NAMESPACE, OTHER_NAMESPACE) if self.namespaced else ("",)


def core(name: str, namespaced: bool = False) -> Resource:
    return Resource("", name, namespaced)


def ours(name: str) -> Resource:
    return Resource("localcsi.io", name)


def storage(name: str, namespaced: bool = False) -> Resource:
    return Resource("storage.k8s.io", name, namespaced)


def snapshot(name: str, namespaced: bool = False) -> Resource:
    return Resource("snapshot.storage.k8s.io", name, namespaced)


NLS, NLS_STATUS = ours("nodelocalstorages"), ours("nodelocalstorages/status")
NLSC, NLSC_STATUS = ours("nodelocalstorageinitconfigs"), ours("nodelocalstorageinitconfigs/status")
LV, LV_STATUS = ours("logicalvolumes"), ours("logicalvolumes/status")
EVENT, NODE, PV = core("events", namespaced=True), core("nodes"), core("persistentvolumes")
PVC, PVC_STATUS = (
    core("persistentvolumeclaims", namespaced=True),
    core("persistentvolumeclaims/status", namespaced=True),
)
POD, LEASE = core("pods", namespaced=True), Resource("coordination.k8s.io", "leases", namespaced=True)
STORAGE_CLASS, CSI_NODE, ATTACHMENT = storage("storageclasses"), storage("csinodes"), storage("volumeattachments")
CAPACITY = storage("csistoragecapacities", namespaced=True)
REPLICA_SET = Resource("apps", "replicasets", namespaced=True)
SNAPSHOT, SNAPSHOT_CLASS = snapshot("volumesnapshots", namespaced=True), snapshot("volumesnapshotclasses")
SNAPSHOT_STATUS = snapshot("volumesnapshots/status", namespaced=True)
CONTENT, CONTENT_STATUS = snapshot("volumesnapshotcontents"), snapshot("volumesnapshotcontents/status")
SECRET = core("secrets", namespaced=True)

# Resources no localcsi account may touch at all (but SNAPSHOT_STATUS, the snapshot controller's), checked
# with every verb.
FORBIDDEN_EVERYWHERE = (
    SECRET,
    core("configmaps", namespaced=True),
    core("serviceaccounts", namespaced=True),
    core("serviceaccounts/token", namespaced=True),
    core("pods/exec", namespaced=True),
    core("pods/eviction", namespaced=True),
    core("nodes/status"),
    core("nodes/proxy"),
    core("namespaces"),
    core("persistentvolumes/status"),
    Resource("rbac.authorization.k8s.io", "clusterroles"),
    Resource("rbac.authorization.k8s.io", "clusterrolebindings"),
    Resource("rbac.authorization.k8s.io", "roles", namespaced=True),
    Resource("rbac.authorization.k8s.io", "rolebindings", namespaced=True),
    Resource("apiextensions.k8s.io", "customresourcedefinitions"),
    Resource("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    Resource("apps", "daemonsets", namespaced=True),
    Resource("apps", "deployments", namespaced=True),
    storage("csidrivers"),
    Resource("events.k8s.io", "events", namespaced=True),
    SNAPSHOT_STATUS,
    Resource("groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents"),
)


@dataclass(frozen=True)
class Grant:
    resource: Resource
    verbs: tuple[str, ...]
    namespace: str | None = None  # None: a ClusterRole, valid everywhere; else a Role in that namespace


# Exactly the table of docs/crds.md#rbac, and for the snapshot controller that of docs/install.md.
EXPECTED: dict[str, tuple[Grant, ...]] = {
    AGENT: (
        Grant(NLS, ("list", "watch")),
        Grant(NLS_STATUS, ("patch",)),
        Grant(LV, (*READ, "patch")),
        Grant(LV_STATUS, ("patch",)),
        Grant(EVENT, ("create",)),
    ),
    CONTROLLER: (
        Grant(NLSC, ("list", "watch")),
        Grant(NLSC_STATUS, ("patch",)),
        Grant(NLS, ("list", "watch", "create", "update", "delete")),
        Grant(NODE, ("list", "watch")),
        Grant(EVENT, ("create",)),
        Grant(LEASE, ("get", "create", "update"), SYSTEM_NAMESPACE),
    ),
    CSI_CONTROLLER: (
        Grant(LV, (*READ, "create", "update", "patch", "delete")),
        Grant(NLS, READ),
        Grant(EVENT, EVENTS),
        Grant(PV, (*READ, "create", "delete", "patch")),
        Grant(PVC, (*READ, "update", "patch")),
        Grant(PVC_STATUS, ("patch",)),
        Grant(POD, ("list", "watch")),
        Grant(STORAGE_CLASS, READ),
        Grant(NODE, READ),
        Grant(CSI_NODE, READ),
        Grant(ATTACHMENT, READ),
        Grant(SNAPSHOT, (*READ, "update")),
        Grant(SNAPSHOT_CLASS, READ),
        Grant(CONTENT, (*READ, "create", "update", "patch")),
        Grant(CONTENT_STATUS, ("update", "patch")),
        Grant(LEASE, (*READ, "create", "update", "patch"), SYSTEM_NAMESPACE),
        Grant(CAPACITY, (*READ, "create", "update", "patch", "delete"), SYSTEM_NAMESPACE),
        Grant(POD, ("get",), SYSTEM_NAMESPACE),
        Grant(REPLICA_SET, ("get",), SYSTEM_NAMESPACE),
    ),
    EXTENDER: (
        Grant(NLS, INFORMER),
        Grant(LV, INFORMER),
        Grant(PV, INFORMER),
        Grant(PVC, READ),  # get: filter reads a PVC its informer has not delivered yet
        Grant(POD, INFORMER),
        Grant(STORAGE_CLASS, INFORMER),
        Grant(SNAPSHOT, INFORMER),
        Grant(CONTENT, INFORMER),
    ),
    SNAPSHOT_CONTROLLER: (
        Grant(PV, READ),
        Grant(PVC, (*READ, "update")),
        Grant(EVENT, EVENTS),
        Grant(SNAPSHOT_CLASS, INFORMER),
        Grant(CONTENT, (*INFORMER, "create", "patch", "delete")),
        Grant(SNAPSHOT, (*READ, "update", "patch")),
        Grant(SNAPSHOT_STATUS, ("update",)),
        Grant(LEASE, ("get", "create", "update"), SYSTEM_NAMESPACE),
    ),
}

UNIVERSE = tuple(
    dict.fromkeys(
        [grant.resource for grants in EXPECTED.values() for grant in grants]
        + [NLS, NLS_STATUS, NLSC, NLSC_STATUS, LV, LV_STATUS]
        + list(FORBIDDEN_EVERYWHERE)
    )
)


@dataclass(frozen=True)
class Question:
    resource: Resource
    verb: str
    namespace: str

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.resource.namespaced and self.namespace else ""
        everywhere = " in all namespaces" if self.resource.namespaced and not self.namespace else ""
        group = self.resource.group or "core"
        return f"{self.verb} {group}/{self.resource.name}{where}{everywhere}"


def expected_answer(account: str, question: Question) -> bool:
    for grant in EXPECTED[account]:
        scope_matches = grant.namespace is None or grant.namespace == question.namespace
        if grant.resource == question.resource and question.verb in grant.verbs and scope_matches:
            return True
    return False


def questions() -> list[Question]:
    return [
        Question(resource, verb, namespace)
        for resource in UNIVERSE
        for verb in VERBS
        for namespace in resource.namespaces()
    ]


def can(api: client.AuthorizationV1Api, account: str, question: Question) -> bool:
    resource = question.resource
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=service_account_user(account),
            groups=SA_GROUPS,
            resource_attributes=client.V1ResourceAttributes(
                group=resource.group,
                resource=resource.plural,
                subresource=resource.subresource or None,
                verb=question.verb,
                namespace=question.namespace or None,
            ),
        )
    )
    return bool(api.create_subject_access_review(review).status.allowed)


@pytest.fixture(scope="module")
def authorization(kube_cluster: KubeCluster) -> client.AuthorizationV1Api:
    return client.AuthorizationV1Api(kube_cluster.api_client())


@pytest.mark.parametrize("account", list(EXPECTED))
def test_each_account_may_do_exactly_what_the_table_says(
    authorization: client.AuthorizationV1Api, account: str
) -> None:
    asked = questions()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda question: can(authorization, account, question), asked))

    wrong_grants = [
        str(q) for q, allowed in zip(asked, answers, strict=True) if allowed and not expected_answer(account, q)
    ]
    missing = [str(q) for q, allowed in zip(asked, answers, strict=True) if not allowed and expected_answer(account, q)]
    assert not wrong_grants, f"{account} may do more than docs/crds.md says: {wrong_grants}"
    assert not missing, f"{account} lacks permissions it needs: {missing}"
    assert any(answers), "no SubjectAccessReview was allowed at all: the RBAC manifests are not applied"


@pytest.mark.parametrize("account", list(EXPECTED))
@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        ("rbac.authorization.k8s.io", "clusterroles", "escalate"),
        ("rbac.authorization.k8s.io", "clusterroles", "bind"),
        ("", "users", "impersonate"),
        ("", "serviceaccounts", "impersonate"),
        ("", "secrets", "*"),
        ("localcsi.io", "*", "get"),
    ],
)
def test_no_account_can_escalate_impersonate_or_use_wildcards(
    authorization: client.AuthorizationV1Api, account: str, group: str, resource: str, verb: str
) -> None:
    question = Question(Resource(group, resource), verb, "")
    assert not can(authorization, account, question), f"{account} may {question}"


# -- real requests with each account's own token ----------------------------------------------------


def forbidden(request: Callable[[], object]) -> bool:
    """True when the request fails with 403 (raising anything else, e.g. a 404 after passing RBAC, fails)."""
    try:
        request()
    except Forbidden:
        return True
    except ApiException as error:
        if error.status == 403:
            return True
        raise
    return False


NODE_NAME = "rbac-node-1"


@pytest.fixture(scope="module")
def node_storage(kube_cluster: KubeCluster) -> Iterator[str]:
    """A Node and its NodeLocalStorage, made by admin."""
    core_api = client.CoreV1Api(kube_cluster.api_client())
    core_api.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=NODE_NAME)))
    nls = CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE)
    nls.create({"metadata": {"name": NODE_NAME}, "spec": {"nodeName": NODE_NAME}})
    yield NODE_NAME
    nls.delete(NODE_NAME)
    core_api.delete_node(NODE_NAME)


def event(namespace: str, about: str) -> client.CoreV1Event:
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="rbac-test-", namespace=namespace),
        involved_object=client.V1ObjectReference(
            kind="NodeLocalStorage", name=about, api_version="localcsi.io/v1alpha1"
        ),
        reason="Test",
        message="rbac test",
        type="Normal",
    )


def test_agent_reports_status_but_cannot_write_spec_or_read_secrets(
    kube_cluster: KubeCluster, node_storage: str
) -> None:
    api, kube = kube_cluster.api_client(AGENT), kube_cluster.kube_api(AGENT)
    nls = CustomResources(kube, NODE_LOCAL_STORAGE)
    core_api = client.CoreV1Api(api)

    assert node_storage in [item["metadata"]["name"] for item in nls.list()[0]]
    reported = nls.patch_status(node_storage, {"summary": {"readyVolumeGroups": 0}})
    assert reported["status"]["summary"] == {"readyVolumeGroups": 0}
    assert forbidden(lambda: core_api.read_node(node_storage))
    core_api.create_namespaced_event(OTHER_NAMESPACE, event(OTHER_NAMESPACE, node_storage))
    assert CustomResources(kube, LOGICAL_VOLUME).list()[0] is not None

    assert forbidden(lambda: nls.create({"metadata": {"name": "agent-made"}, "spec": {"nodeName": "agent-made"}}))
    assert forbidden(lambda: nls.patch(node_storage, {"spec": {"listConfig": {"vgs": {"include": [".*"]}}}}))
    assert forbidden(lambda: nls.delete(node_storage))
    assert forbidden(lambda: core_api.list_namespaced_secret(SYSTEM_NAMESPACE))
    assert forbidden(lambda: core_api.delete_node(node_storage))
    assert forbidden(core_api.list_node)


def test_controller_manages_node_storage_and_its_lease_only(kube_cluster: KubeCluster, node_storage: str) -> None:
    api, kube = kube_cluster.api_client(CONTROLLER), kube_cluster.kube_api(CONTROLLER)
    nls = CustomResources(kube, NODE_LOCAL_STORAGE)
    leases = client.CoordinationV1Api(api)
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="localcsi-controller-rbac-test"))

    made = nls.create({"metadata": {"name": "controller-made"}, "spec": {"nodeName": "controller-made"}})
    assert made["spec"]["nodeName"] == "controller-made"
    assert nls.delete("controller-made") is True
    assert CustomResources(kube, NODE_LOCAL_STORAGE_INIT_CONFIG).list()[0] is not None
    leases.create_namespaced_lease(SYSTEM_NAMESPACE, lease)
    assert leases.read_namespaced_lease(lease.metadata.name, SYSTEM_NAMESPACE).metadata.name == lease.metadata.name

    assert forbidden(lambda: leases.create_namespaced_lease(OTHER_NAMESPACE, lease))
    assert forbidden(lambda: nls.patch_status(node_storage, {"summary": {"readyVolumeGroups": 9}}))
    assert forbidden(lambda: client.CoreV1Api(api).read_namespaced_secret("any", SYSTEM_NAMESPACE))
    assert forbidden(lambda: client.CoreV1Api(api).delete_node(node_storage))
    client.CoordinationV1Api(kube_cluster.api_client()).delete_namespaced_lease(lease.metadata.name, SYSTEM_NAMESPACE)


def test_csi_controller_publishes_capacity_only_in_its_namespace(kube_cluster: KubeCluster, node_storage: str) -> None:
    api, kube = kube_cluster.api_client(CSI_CONTROLLER), kube_cluster.kube_api(CSI_CONTROLLER)
    capacities = client.StorageV1Api(api)
    capacity = client.V1CSIStorageCapacity(
        metadata=client.V1ObjectMeta(generate_name="csisc-"), storage_class_name="localcsi-lvm", capacity="10Gi"
    )

    made = capacities.create_namespaced_csi_storage_capacity(SYSTEM_NAMESPACE, capacity)
    capacities.delete_namespaced_csi_storage_capacity(made.metadata.name, SYSTEM_NAMESPACE)
    assert CustomResources(kube, LOGICAL_VOLUME).list()[0] is not None
    assert CustomResources(kube, NODE_LOCAL_STORAGE).get(node_storage) is not None

    assert forbidden(lambda: capacities.create_namespaced_csi_storage_capacity(OTHER_NAMESPACE, capacity))
    assert forbidden(lambda: CustomResources(kube, NODE_LOCAL_STORAGE).delete(node_storage))
    assert forbidden(lambda: client.CoreV1Api(api).list_secret_for_all_namespaces())
    assert forbidden(lambda: client.CoreV1Api(api).delete_node(node_storage))


def test_extender_only_reads(kube_cluster: KubeCluster, node_storage: str) -> None:
    api, kube = kube_cluster.api_client(EXTENDER), kube_cluster.kube_api(EXTENDER)
    core_api = client.CoreV1Api(api)
    nls = CustomResources(kube, NODE_LOCAL_STORAGE)

    assert node_storage in [item["metadata"]["name"] for item in nls.list()[0]]
    assert forbidden(core_api.list_node)
    core_api.list_pod_for_all_namespaces()
    core_api.list_persistent_volume_claim_for_all_namespaces()

    # filter's live read of a PVC its informer has not delivered yet: the object, or None when absent
    claim = f"rbac-read-live-{node_storage}"
    client.CoreV1Api(kube_cluster.api_client()).create_namespaced_persistent_volume_claim(OTHER_NAMESPACE, {
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip
    fetch = claim_fetcher(kube)
    read = fetch(OTHER_NAMESPACE, claim)
    assert read is not None and read["metadata"]["name"] == claim
    assert read["spec"]["resources"]["requests"]["storage"] == "1Gi"  # the apiserver's JSON, as informers get it
    assert fetch(OTHER_NAMESPACE, "no-such-claim") is None
    assert forbidden(lambda: core_api.read_namespaced_pod("any", OTHER_NAMESPACE))

    assert forbidden(lambda: nls.patch(node_storage, {"metadata": {"labels": {"x": "y"}}}))
    assert forbidden(lambda: nls.patch_status(node_storage, {"summary": {"readyVolumeGroups": 9}}))
    assert forbidden(lambda: core_api.patch_node(node_storage, {"metadata": {"labels": {"x": "y"}}}))
    assert forbidden(lambda: core_api.list_namespaced_secret(OTHER_NAMESPACE))
    assert forbidden(lambda: core_api.delete_node(node_storage))
