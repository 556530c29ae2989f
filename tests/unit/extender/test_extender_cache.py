import random

import pytest
from extender_objects import inline, nls, pod, pv_for, pvc, storage_class

from localcsi.core.capacity_table import NO_ROOM
from localcsi.core.scheduling import node_capacity
from localcsi.core.sizes import GiB
from localcsi.extender.cache import (
    LOGICAL_VOLUMES,
    NODE_LOCAL_STORAGES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    ClusterView,
)
from localcsi.extender.objects import inline_volume_key, pvc_volume_key

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.commits: list[tuple[str, str]] = []
        self.pods_done: list[str] = []
        self.nodes_gone: list[str] = []

    def view(self) -> ClusterView:
        return ClusterView(
            on_commit=lambda key, node: self.commits.append((key, node)),
            on_pod_done=self.pods_done.append,
            on_node_gone=self.nodes_gone.append,
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def view(recorder: Recorder) -> ClusterView:
    view = recorder.view()
    view.apply(STORAGE_CLASSES, "ADDED", storage_class())
    view.apply(NODE_LOCAL_STORAGES, "ADDED", nls("n1", ("vg0", 50)))
    view.apply(NODE_LOCAL_STORAGES, "ADDED", nls("n2", ("vg0", 50)))
    return view


def free(view: ClusterView, node: str) -> float:
    cap = view.capacity(node)
    assert cap is not None
    return cap.vg_free["vg0"] / GiB


def test_a_node_without_a_report_has_no_capacity(view: ClusterView) -> None:
    assert view.capacity("n9") is None
    assert view.nodes() == ["n1", "n2"]


def test_a_selected_node_pvc_is_pending_there_until_its_pv_appears(view: ClusterView, recorder: Recorder) -> None:
    claim = pvc("a", "10Gi")
    view.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", claim)
    assert free(view, "n1") == 50  # not committed anywhere yet
    annotated = pvc("a", "10Gi", selected_node="n1")
    view.apply(PERSISTENT_VOLUME_CLAIMS, "MODIFIED", annotated)
    assert free(view, "n1") == 40
    assert recorder.commits == [(pvc_volume_key(claim), "n1")]
    # bound: the PV takes over; the volume still counts once
    bound = pvc("a", "10Gi", selected_node="n1", volume_name=f"pvc-{claim['metadata']['uid']}")
    view.apply(PERSISTENT_VOLUME_CLAIMS, "MODIFIED", bound)
    assert free(view, "n1") == 40  # the PV is not in the cache yet: still pending
    view.apply(PERSISTENT_VOLUMES, "ADDED", pv_for(claim, "n1"))
    assert free(view, "n1") == 40
    assert [u.key for u in view.usages("n1")] == [pvc_volume_key(claim)]
    # once the agent reports the LV, allocatable already excludes it
    view.apply(NODE_LOCAL_STORAGES, "MODIFIED", nls("n1", ("vg0", 40), lvs=(pvc_volume_key(claim),)))
    assert free(view, "n1") == 40
    assert free(view, "n2") == 50


def test_a_pv_seen_before_its_claim_changes_counts_once(view: ClusterView) -> None:
    claim = pvc("a", "10Gi")
    view.apply(PERSISTENT_VOLUMES, "ADDED", pv_for(claim, "n2"))
    view.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", pvc("a", "10Gi", selected_node="n2"))
    assert free(view, "n2") == 40


def test_deleting_the_pv_frees_the_space(view: ClusterView) -> None:
    claim = pvc("a", "10Gi")
    volume = pv_for(claim, "n1")
    view.apply(PERSISTENT_VOLUMES, "ADDED", volume)
    assert free(view, "n1") == 40
    view.apply(PERSISTENT_VOLUMES, "DELETED", volume)
    assert free(view, "n1") == 50


def test_a_class_arriving_late_makes_its_pending_pvcs_count(view: ClusterView) -> None:
    view.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", pvc("a", "5Gi", "late", selected_node="n1"))
    assert free(view, "n1") == 50
    view.apply(STORAGE_CLASSES, "ADDED", storage_class("late"))
    assert free(view, "n1") == 45
    view.apply(STORAGE_CLASSES, "DELETED", storage_class("late"))
    assert free(view, "n1") == 50


def test_logical_volumes_count_until_the_report_includes_them(view: ClusterView, recorder: Recorder) -> None:
    resource = {
        "metadata": {"name": "csi-abc"},
        "spec": {"nodeName": "n1", "vgName": "vg0", "kind": "Volume", "size": 3 * GiB},
    }
    view.apply(LOGICAL_VOLUMES, "ADDED", resource)
    assert free(view, "n1") == 47
    assert recorder.commits == [("csi-abc", "n1")]
    view.apply(LOGICAL_VOLUMES, "MODIFIED", resource)
    assert recorder.commits == [("csi-abc", "n1")]  # no news, no second commit


def test_scheduled_pods_inline_volumes_take_room_and_end_their_reservations(
    view: ClusterView, recorder: Recorder
) -> None:
    pending = pod("p", volumes=(inline("scratch", size="4Gi"),))
    view.apply(PODS, "ADDED", pending)
    assert free(view, "n1") == 50 and recorder.pods_done == []
    running = pod("p", node="n1", volumes=(inline("scratch", size="4Gi"),))
    view.apply(PODS, "MODIFIED", running)
    assert free(view, "n1") == 46
    assert recorder.pods_done == ["uid-p"]
    assert recorder.commits == [(inline_volume_key("uid-p", "scratch"), "n1")]
    view.apply(PODS, "DELETED", running)
    assert free(view, "n1") == 50


def test_a_deleted_report_is_a_node_gone(view: ClusterView, recorder: Recorder) -> None:
    view.apply(NODE_LOCAL_STORAGES, "DELETED", nls("n2", ("vg0", 50)))
    assert view.capacity("n2") is None
    assert recorder.nodes_gone == ["n2"]


def test_replace_all_converges_after_missed_events(view: ClusterView) -> None:
    kept, missed_delete = pvc("kept", "1Gi", selected_node="n1"), pvc("gone", "2Gi", selected_node="n1")
    view.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", kept)
    view.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", missed_delete)
    assert free(view, "n1") == 47
    missed_add = pvc("new", "4Gi", selected_node="n1")
    snapshot = {"default/kept": kept, "default/new": missed_add}
    assert view.replace_all(PERSISTENT_VOLUME_CLAIMS, snapshot) == 2
    assert free(view, "n1") == 45
    assert view.replace_all(PERSISTENT_VOLUME_CLAIMS, snapshot) == 0


def test_replace_all_compares_pods_as_the_view_keeps_them(view: ClusterView) -> None:
    running = pod("p", node="n1", volumes=(inline("s", size="1Gi"),))
    view.apply(PODS, "ADDED", running)
    assert view.replace_all(PODS, {"default/p": running}) == 0
    assert view.replace_all(PODS, {}) == 1
    assert free(view, "n1") == 50


def test_snapshot_nodes_come_from_the_bound_contents_handle(view: ClusterView) -> None:
    assert view.snapshot_node("default", "s") is None
    view.snapshots_watched = True
    assert view.snapshot_node("default", "s") == ""
    snapshot = {
        "metadata": {"name": "s", "namespace": "default"},
        "status": {"boundVolumeSnapshotContentName": "snapcontent-1"},
    }
    view.apply(VOLUME_SNAPSHOTS, "ADDED", snapshot)
    assert view.snapshot_node("default", "s") == ""
    content = {"metadata": {"name": "snapcontent-1"}, "status": {"snapshotHandle": "n2/vg0/snap-0123"}}
    view.apply(VOLUME_SNAPSHOT_CONTENTS, "ADDED", content)
    assert view.snapshot_node("default", "s") == "n2"
    content["status"]["snapshotHandle"] = "garbage"
    view.apply(VOLUME_SNAPSHOT_CONTENTS, "MODIFIED", content)
    assert view.snapshot_node("default", "s") == ""


@pytest.mark.parametrize("seed", range(4))
def test_capacity_patched_event_by_event_is_what_a_recount_gives(seed: int) -> None:
    """Random PVCs, PVs, LogicalVolumes, scheduled pods and reports, on nodes of zero, one and two VGs:
    after every event, each node's capacity (and its table row) is node_capacity over its volumes."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    view = ClusterView()
    view.apply(STORAGE_CLASSES, "ADDED", storage_class())
    nodes = ["n1", "n2", "n3"]
    layouts = {"n1": (("vg0", 50),), "n2": (("vg0", 30), ("vg1", 20)), "n3": ()}
    claims = [pvc(f"c{i}", f"{rng.randint(1, 9)}Gi") for i in range(8)]
    keys = [pvc_volume_key(claim) for claim in claims]
    for node, layout in layouts.items():
        view.apply(NODE_LOCAL_STORAGES, "ADDED", nls(node, *layout))
    for _ in range(300):
        node, claim, key = rng.choice(nodes), rng.choice(claims), rng.choice(keys)
        name, size = claim["metadata"]["name"], claim["spec"]["resources"]["requests"]["storage"]
        event = rng.randrange(6)
        if event == 0:
            lvs = tuple(rng.sample(keys, 2))
            view.apply(NODE_LOCAL_STORAGES, "MODIFIED", nls(node, *layouts[node], lvs=lvs))
        elif event == 1:
            view.apply(PERSISTENT_VOLUME_CLAIMS, "MODIFIED", pvc(name, size, selected_node=node))
        elif event == 2:
            view.apply(PERSISTENT_VOLUMES, rng.choice(["MODIFIED", "DELETED"]), pv_for(claim, node))
        elif event == 3:
            resource = {
                "metadata": {"name": key},
                "spec": {"nodeName": node, "vgName": rng.choice(["vg0", "vg1"]), "size": rng.randint(1, 9) * GiB},
            }
            view.apply(LOGICAL_VOLUMES, rng.choice(["MODIFIED", "DELETED"]), resource)
        elif event == 4:
            scheduled = pod("p", node=node, volumes=(inline("scratch", size=f"{rng.randint(1, 5)}Gi"),))
            view.apply(PODS, rng.choice(["MODIFIED", "DELETED"]), scheduled)
        else:
            view.apply(PERSISTENT_VOLUME_CLAIMS, "DELETED", claim)
        table = view.capacity_table()
        for each in nodes:
            assert table[each] == node_capacity(view._reports[each], view.usages(each)), each
        rows = view.table().rows_of(nodes)
        assert view.table().free[rows].tolist() == [
            [table[n].vg_free.get(vg, NO_ROOM) for vg in view.table().vg_names] for n in nodes
        ]
