import copy
from collections.abc import Mapping
from typing import Any

import pytest
from extender_objects import Obj, ephemeral, inline, pod, pv_for, pvc, storage_class

from localcsi.core.params import VolumeType
from localcsi.core.scheduling import Pin, VolumeRequest
from localcsi.core.sizes import GiB
from localcsi.extender.demand import RecordingLookup, claim_names, pod_demand
from localcsi.extender.objects import inline_volume_key, pvc_volume_key

pytestmark = pytest.mark.unit


class Lookup:
    def __init__(self, *objects: Obj, snapshots: dict[str, str] | None = None) -> None:
        self.objects = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
        self.snapshots = snapshots

    def pvc(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.objects.get(("PersistentVolumeClaim", namespace, name))

    def pv(self, name: str) -> Mapping[str, Any] | None:
        return self.objects.get(("PersistentVolume", None, name))

    def storage_class(self, name: str) -> Mapping[str, Any] | None:
        return self.objects.get(("StorageClass", None, name))

    def snapshot_node(self, namespace: str, name: str) -> str | None:
        return None if self.snapshots is None else self.snapshots.get(f"{namespace}/{name}", "")


def test_every_pending_pvc_of_ours_is_a_request() -> None:
    a, b = pvc("a", "5Gi"), pvc("b", "3Gi")
    demand, notes = pod_demand(pod("p", "a", "b"), Lookup(storage_class(), a, b))
    assert demand.requests == (
        VolumeRequest(pvc_volume_key(a), "PVC default/a", 5 * GiB, charge_bytes=5 * GiB),
        VolumeRequest(pvc_volume_key(b), "PVC default/b", 3 * GiB, charge_bytes=3 * GiB),
    )
    assert (demand.pins, demand.problems, notes) == ((), (), [])


def test_pods_without_our_volumes_have_no_demand() -> None:
    other = pvc("o", storage_class_name="other")
    no_class = pvc("n", storage_class_name=None)
    lookup = Lookup(storage_class("other", provisioner="ebs.csi.aws.com"), other, no_class)
    demand, notes = pod_demand(pod("p", "o", "n", volumes=({"name": "tmp", "emptyDir": {}},)), lookup)
    assert demand.empty and notes == []


def test_a_missing_storage_class_or_pvc_never_counts_and_is_noted() -> None:
    lost = pvc("lost", storage_class_name="gone")
    demand, notes = pod_demand(pod("p", "lost", "absent"), Lookup(lost))
    assert demand.empty
    assert notes == [
        "PVC default/lost: StorageClass gone does not exist; not counted",
        "PVC default/absent not found; not counted",
    ]


def test_bound_and_committed_volumes_pin_the_pod() -> None:
    bound = pvc("bound", uid="u1", volume_name="pvc-u1")
    committed = pvc("committed", selected_node="n2")
    lookup = Lookup(storage_class(), bound, pv_for(bound, "n1"), committed)
    demand, _ = pod_demand(pod("p", "bound", "committed"), lookup)
    assert demand.requests == ()
    assert demand.pins == (
        Pin("n1", "PVC default/bound is bound to a volume on node n1"),
        Pin("n2", "PVC default/committed is committed to node n2 (selected-node) and being provisioned"),
    )


def test_a_pvc_bound_to_someone_elses_pv_is_not_ours() -> None:
    bound = pvc("nfs", volume_name="nfs-pv")
    volume = {"kind": "PersistentVolume", "metadata": {"name": "nfs-pv"}, "spec": {"nfs": {"server": "x"}}}
    demand, _ = pod_demand(pod("p", "nfs"), Lookup(storage_class(), bound, volume))
    assert demand.empty


def test_invalid_class_parameters_are_a_problem_for_this_pod_only() -> None:
    claim = pvc("a", storage_class_name="broken")
    demand, _ = pod_demand(pod("p", "a"), Lookup(storage_class("broken", volumeType="Tape"), claim))
    assert len(demand.problems) == 1
    assert demand.problems[0].startswith("StorageClass broken of PVC default/a is invalid: parameter volumeType")


def test_generic_ephemeral_volumes_count_through_their_pvc_or_the_template() -> None:
    created = pvc("p-cache", "4Gi")
    demand, _ = pod_demand(pod("p", volumes=(ephemeral("cache"),)), Lookup(storage_class(), created))
    assert [(r.key, r.label, r.size_bytes) for r in demand.requests] == [
        (pvc_volume_key(created), "PVC default/p-cache (ephemeral)", 4 * GiB)
    ]
    demand, _ = pod_demand(pod("p", volumes=(ephemeral("cache", "6Gi"),)), Lookup(storage_class()))
    assert [(r.label, r.size_bytes) for r in demand.requests] == [("PVC default/p-cache (ephemeral)", 6 * GiB)]


def test_csi_inline_volumes_count_with_their_size_and_attributes() -> None:
    volumes = (inline("scratch", size="2Gi", vgName="vg1"), inline("plain"))
    demand, _ = pod_demand(pod("p", volumes=volumes), Lookup())
    assert [(r.key, r.size_bytes, r.vg_name) for r in demand.requests] == [
        (inline_volume_key("uid-p", "scratch"), 2 * GiB, "vg1"),
        (inline_volume_key("uid-p", "plain"), GiB, None),
    ]
    bad, _ = pod_demand(pod("p", volumes=(inline("x", volumeType="Tape"),)), Lookup())
    assert bad.problems and bad.problems[0].startswith("inline volume x has invalid volumeAttributes")


def test_device_classes_make_exclusive_requests() -> None:
    claim = pvc("d", "100Gi", "disk")
    lookup = Lookup(storage_class("disk", volumeType="Device", mediaType="ssd"), claim)
    demand, _ = pod_demand(pod("p", "d"), lookup)
    assert [(r.volume_type, r.media_type) for r in demand.exclusive] == [(VolumeType.DEVICE, "ssd")]


SNAPSHOT = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}


def test_a_restore_goes_to_the_snapshots_node() -> None:
    claim = pvc("r", data_source=SNAPSHOT)
    demand, _ = pod_demand(pod("p", "r"), Lookup(storage_class(), claim, snapshots={"default/snap": "n3"}))
    assert demand.pins == (Pin("n3", "PVC default/r restores VolumeSnapshot default/snap, whose data is on node n3"),)
    assert len(demand.requests) == 1


def test_a_restore_from_a_snapshot_not_ready_waits() -> None:
    claim = pvc("r", data_source=SNAPSHOT)
    demand, _ = pod_demand(pod("p", "r"), Lookup(storage_class(), claim, snapshots={}))
    assert demand.problems == (
        "PVC default/r restores VolumeSnapshot default/snap, which is not ready (no snapshot handle yet)",
    )
    unwatched, notes = pod_demand(pod("p", "r"), Lookup(storage_class(), claim))
    assert unwatched.pins == () and unwatched.problems == ()
    assert notes == ["PVC default/r: restores VolumeSnapshot default/snap, but snapshots are not watched; not pinned"]


def test_a_clone_goes_to_its_sources_node() -> None:
    source = pvc("src", uid="u9", volume_name="pvc-u9")
    clone = pvc("copy", data_source={"kind": "PersistentVolumeClaim", "name": "src"})
    demand, _ = pod_demand(pod("p", "copy"), Lookup(storage_class(), source, pv_for(source, "n4"), clone))
    assert demand.pins == (Pin("n4", "PVC default/copy clones PVC default/src, whose volume is on node n4"),)


def test_claim_names_are_the_pods_pvcs_and_its_generic_ephemeral_ones() -> None:
    ephemeral = {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
    others = ({"name": "tmp", "emptyDir": {}}, {"name": "blank", "persistentVolumeClaim": {"claimName": ""}})
    assert claim_names(pod("web", "data", "logs", volumes=(ephemeral, *others))) == (
        "default",
        ["data", "logs", "web-scratch"],
    )


# RecordingLookup: a demand holds while what it read is unchanged ---------------------------------


def test_a_recorded_demand_holds_until_something_it_read_changes() -> None:
    claim = pvc("r", data_source=SNAPSHOT)
    view = Lookup(storage_class(), claim, snapshots={"default/snap": "n3"})
    reads = RecordingLookup(view)
    demand, _ = pod_demand(pod("p", "r"), reads)
    assert demand.pins and reads.unchanged()
    view.objects[("PersistentVolumeClaim", "default", "r")] = copy.deepcopy(claim)  # a new, equal object
    view.objects[("PersistentVolumeClaim", "default", "other")] = pvc("other", "9Gi")  # a claim it never read
    assert reads.unchanged()
    view.snapshots = {"default/snap": "n4"}  # the snapshot's node: an answer that is a string
    assert not reads.unchanged()
    view.snapshots = {"default/snap": "n3"}
    assert reads.unchanged()
    bigger = copy.deepcopy(claim)
    bigger["spec"]["resources"]["requests"]["storage"] = "9Gi"
    view.objects[("PersistentVolumeClaim", "default", "r")] = bigger
    assert not reads.unchanged()


def test_a_recorded_demand_notices_what_was_missing_appearing() -> None:
    view = Lookup(storage_class())
    reads = RecordingLookup(view)
    demand, notes = pod_demand(pod("p", "late"), reads)
    assert not demand.requests and notes and reads.unchanged()
    late = pvc("late")
    view.objects[("PersistentVolumeClaim", "default", "late")] = late
    assert not reads.unchanged()
