"""deploy/crds/logicalvolume.yaml on the real kube-apiserver: the resources cluster mode writes are
accepted unchanged (nothing pruned); invalid ones and forbidden changes are refused with HTTP 422 and a
message that names the problem; the agent may write status but not create resources."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from localcsi.core.ids import make_ref
from localcsi.core.names import volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.driver import cluster_resources as res
from localcsi.driver.backend import VolumePlan
from localcsi.k8s.errors import Forbidden, Invalid
from localcsi.k8s.resources import LOGICAL_VOLUME, CustomResources
from localcsi.resources import logicalvolume as llv
from localcsi.testing.cluster import KubeCluster

Object = dict[str, Any]
GIB = 1024**3


@pytest.fixture(scope="module")
def controller(kube_cluster: KubeCluster) -> CustomResources:
    return CustomResources(kube_cluster.kube_api("localcsi-csi-controller"), LOGICAL_VOLUME)


@pytest.fixture(scope="module")
def agent(kube_cluster: KubeCluster) -> CustomResources:
    return CustomResources(kube_cluster.kube_api("localcsi-agent"), LOGICAL_VOLUME)


def valid(name: str | None = None, **spec: Any) -> Object:
    csi_name = name or f"pvc-{uuid.uuid4()}"
    plan = VolumePlan(make_ref("node-1", "localcsi-a", volume_lv_name(csi_name)), csi_name,
                      Placement("localcsi-a", GIB, LvmType.LINEAR), GIB, None, "ext4", "mount",
                      {"bps": "1048576", "readIops": "0", "overprovisioning": "3/2"})  # fmt: skip
    body: Object = dict(res.volume_resource(plan))
    body["spec"] = {**body["spec"], **spec}
    return body


def without(key: str) -> Callable[[Object], None]:
    return lambda spec: spec.pop(key)


INVALID: dict[str, tuple[Callable[[Object], None], str]] = {
    "negative size": (lambda s: s.update(size=-1), "spec.size in body should be greater than or equal to 1"),
    "zero size": (lambda s: s.update(size=0), "spec.size in body should be greater than or equal to 1"),
    "negative requiredBytes": (lambda s: s.update(requiredBytes=-5), "spec.requiredBytes"),
    "unknown lvmType": (lambda s: s.update(lvmType="mirror"), 'Unsupported value: "mirror"'),
    "unknown kind": (lambda s: s.update(kind="Disk"), 'Unsupported value: "Disk"'),
    "unknown fsType": (lambda s: s.update(fsType="btrfs"), 'Unsupported value: "btrfs"'),
    "unknown accessType": (lambda s: s.update(accessType="file"), 'Unsupported value: "file"'),
    "thin without a pool": (lambda s: s.update(lvmType="thin"), "a thin volume needs thinPool"),
    "stripes on linear": (lambda s: s.update(stripes=2), "stripes and stripeSize are only for lvmType striping"),
    "one stripe": (lambda s: s.update(lvmType="striping", stripes=1), "spec.stripes"),
    "unknown parameter": (lambda s: s.update(parameters={"foo": "1"}), "only overprovisioning is allowed"),
    "a limit among parameters": (lambda s: s.update(parameters={"bps": "1"}), "only overprovisioning is allowed"),
    "quantity parameter": (lambda s: s.update(parameters={"overprovisioning": "1.5"}), "spec.parameters"),
    "unknown IO limit": (lambda s: s.update(ioLimits={"foo": "1"}), "only bps, iops, readBps, writeBps"),
    "quantity IO limit": (lambda s: s.update(ioLimits={"bps": "1Mi"}), "spec.ioLimits.bps"),
    "too many IO limits": (
        lambda s: s.update(
            ioLimits={k: "1" for k in ("bps", "iops", "readBps", "writeBps", "readIops", "writeIops", "x")}
        ),
        "spec.ioLimits",
    ),
    "bad VG name": (lambda s: s.update(vgName="-vg"), "must be an LVM VolumeGroup name"),
    "bad node name": (lambda s: s.update(nodeName="node 1"), "spec.nodeName"),
    "missing nodeName": (without("nodeName"), "spec.nodeName: Required value"),
    "cowSize on a volume": (lambda s: s.update(cowSize=GIB), "cowSize is only for a Snapshot"),
    "source without fill": (
        lambda s: s.update(source={"kind": "Snapshot", "id": "node-1/localcsi-a/snap-1"}),
        "a Volume with a source needs source.fill and source.size",
    ),
    "source id not an id": (
        lambda s: s.update(source={"kind": "Volume", "id": "x; rm -rf /", "fill": "block-copy", "size": 1}),
        "spec.source.id",
    ),
    "snapshot without source": (lambda s: s.update(kind="Snapshot", cowSize=1), "a Snapshot needs a source"),
    "snapshot of a volume in another VG": (
        lambda s: s.update(kind="Snapshot", cowSize=1, source={"kind": "Volume", "id": "node-1/other-vg/csi-1"}),
        "a Snapshot is made beside its source volume",
    ),
    "thin-snapshot fill from another VG": (
        lambda s: s.update(
            source={"kind": "Snapshot", "id": "node-1/other-vg/snap-1", "fill": "thin-snapshot", "size": GIB}
        ),
        "a volume filled by a thin snapshot is made beside its source",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_logicalvolumes_are_refused_with_a_clear_message(controller: CustomResources, case: str) -> None:
    body = valid()
    change, message = INVALID[case]
    change(body["spec"])
    if case.startswith("snapshot "):
        body["metadata"]["name"] = "snap-" + body["metadata"]["name"].removeprefix("csi-")
    with pytest.raises(Invalid) as refused:
        controller.create(body)
    assert message in refused.value.message
    assert controller.get(body["metadata"]["name"]) is None


def test_a_volume_resource_is_stored_unchanged_and_the_name_must_match_the_kind(controller: CustomResources) -> None:
    body = valid()
    stored = controller.create(body)
    assert stored["spec"] == body["spec"], "the schema declares every field: nothing pruned"
    assert stored["metadata"]["labels"] == body["metadata"]["labels"]
    wrong = valid()
    wrong["metadata"]["name"] = "snap-" + wrong["metadata"]["name"]
    with pytest.raises(Invalid, match=r"metadata\.name must be the LV name"):
        controller.create(wrong)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": GIB // 2}, "size may only grow"),
        ({"nodeName": "node-2"}, "nodeName, vgName, kind and csiName are immutable"),
        ({"csiName": "other"}, "nodeName, vgName, kind and csiName are immutable"),
        ({"lvmType": "raid1"}, "lvmType and thinPool are immutable"),
        ({"parameters": {"overprovisioning": "2"}}, "parameters are immutable"),
        ({"fsType": "xfs"}, "fsType and accessType are immutable"),
        ({"requiredBytes": 1}, "requiredBytes is immutable"),
    ],
)
def test_the_spec_is_immutable_but_size_may_grow(controller: CustomResources, change: Object, message: str) -> None:
    stored = controller.create(valid())
    name = stored["metadata"]["name"]
    with pytest.raises(Invalid, match=message):
        controller.patch(name, {"spec": change})
    grown = controller.patch(name, {"spec": {"size": 2 * GIB}})
    assert grown["spec"]["size"] == 2 * GIB and grown["metadata"]["generation"] == 2
    limited = controller.patch(name, {"spec": {"ioLimits": {"bps": "0", "writeIops": "30"}}})
    assert limited["spec"]["ioLimits"] == {"bps": "0", "readIops": "0", "writeIops": "30"}, "IO limits are mutable"


def test_the_agent_writes_status_and_finalizers_but_creates_nothing(
    controller: CustomResources, agent: CustomResources
) -> None:
    stored = controller.create(valid())
    name = stored["metadata"]["name"]
    version = stored["metadata"]["resourceVersion"]
    agent.patch(name, {"metadata": {"finalizers": [llv.FINALIZER], "resourceVersion": version}})
    ready = agent.patch_status(name, {"phase": "Ready", "currentSize": GIB, "volumeId": f"node-1/localcsi-a/{name}"})
    assert ready["status"]["phase"] == "Ready" and ready["spec"] == stored["spec"]
    with pytest.raises(Invalid, match='Unsupported value: "Done"'):
        agent.patch_status(name, {"phase": "Done"})
    with pytest.raises(Invalid, match=r"status\.code"):
        agent.patch_status(name, {"code": "RESOURCE_EXHAUSTED"})
    with pytest.raises(Forbidden):
        agent.create(valid())
    with pytest.raises(Forbidden):
        agent.delete(name)
    assert controller.delete(name)
    held = controller.get(name)
    assert held is not None and held["metadata"].get("deletionTimestamp"), "the finalizer holds it"
    agent.patch(name, {"metadata": {"finalizers": None}})
    assert controller.get(name) is None


def test_status_is_ignored_on_a_main_resource_write(controller: CustomResources) -> None:
    body = copy.deepcopy(valid())
    body["status"] = {"phase": "Ready"}
    stored = controller.create(body)
    assert "status" not in stored
