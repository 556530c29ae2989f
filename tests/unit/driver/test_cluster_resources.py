"""Plans as LogicalVolume resources and back, checked against the CRD's schema in deploy/crds."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi.core.errors import Internal
from localcsi.core.ids import make_ref
from localcsi.core.model import LogicalVolume, Volume, volume_from_lv
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import Source, SourceKind
from localcsi.driver import backend
from localcsi.driver import cluster_resources as res
from localcsi.driver.backend import CREATING_TAG, Content, Fill, SnapshotPlan, VolumePlan, deleting_snapshot, is_ready
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import Phase

pytestmark = pytest.mark.unit

CRD = Path(__file__).resolve().parents[3] / "deploy" / "crds" / "logicalvolume.yaml"
NODE = "node-1"
VG = "localcsi-a"


def volume_plan(name: str = "pvc-1", **changes: Any) -> VolumePlan:
    values: dict[str, Any] = {
        "ref": make_ref(NODE, VG, volume_lv_name(name)),
        "name": name,
        "placement": Placement(VG, 2 * GiB, LvmType.LINEAR),
        "requested_bytes": 2 * GiB - MiB,
        "fs_type": "xfs",
        "access_type": "mount",
    }
    values.update(changes)
    return VolumePlan(**values)


def restore_plan() -> VolumePlan:
    snap_ref = make_ref(NODE, VG, snapshot_lv_name("snap-1"))
    content = Content(Source(SourceKind.SNAPSHOT, str(snap_ref)), snap_ref, Fill.THIN_SNAPSHOT, True, GiB)
    placement = Placement(VG, 3 * GiB, LvmType.THIN, thin_pool="pool0")
    extra = {"bps": "1048576", "iops": "500", "overprovisioning": str(Fraction(3, 2))}
    return volume_plan("restored", placement=placement, content=content, extra=extra, access_type=None)


def source_volume(thin: bool) -> Volume:
    name = volume_lv_name("origin")
    attr, layout, pool = ("Vwi-a-tz--", ("thin", "sparse"), "pool0") if thin else ("-wi-a-----", ("linear",), "")
    tags = volume_plan("origin").tags()
    volume = volume_from_lv(NODE, LogicalVolume(VG, name, GiB, attr, layout=layout, tags=tags, pool_lv=pool))
    assert volume is not None
    return volume


def stored(body: Mapping[str, Any], phase: Phase | None = None, **status: Any) -> dict[str, Any]:
    """The resource as the apiserver returns it, with the agent's status."""
    obj = {**body, "metadata": {**body["metadata"], "uid": "u1", "creationTimestamp": "2025-03-01T10:00:00Z"}}
    if phase is not None:
        obj["status"] = {"phase": phase.value, **status}
    return obj


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", [volume_plan(), restore_plan()], ids=["empty", "thin-restore"])
def test_a_volume_plan_survives_the_trip_through_its_resource(plan: VolumePlan) -> None:
    body = res.volume_resource(plan)
    assert body["metadata"]["name"] == plan.ref.lv
    assert body["metadata"]["labels"] == {llv.NODE_LABEL: NODE}
    assert backend.volume_plan(stored(body)) == plan
    assert backend.volume_plan(stored(body)).tags() == plan.tags()


def test_a_snapshot_plan_survives_the_trip_and_reads_back_once_ready() -> None:
    source = source_volume(thin=False)
    plan = SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("snap-1")), "snap-1", source, 256 * MiB)
    body = res.snapshot_resource(plan)
    assert body["spec"]["cowSize"] == 256 * MiB and "lvmType" not in body["spec"]
    assert backend.snapshot_plan(stored(body), source) == plan
    assert res.resource_snapshot(stored(body, Phase.CREATING)) is None, "not ready: not a snapshot yet"
    snapshot = res.resource_snapshot(stored(body, Phase.READY, currentSize=256 * MiB))
    assert snapshot is not None
    assert (snapshot.id, snapshot.name, snapshot.source_volume_id) == (str(plan.ref), "snap-1", source.id)
    assert snapshot.size_bytes == GiB, "the restore size is the source's size"
    assert (snapshot.thin, snapshot.ready, snapshot.lv.is_cow_snapshot) == (False, True, True)
    assert snapshot.created is not None and snapshot.created.year == 2025


def test_a_thin_snapshot_names_its_pool_and_an_invalid_thick_one_is_not_ready() -> None:
    thin = SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("t")), "t", source_volume(thin=True), None)
    body = res.snapshot_resource(thin)
    assert (body["spec"]["lvmType"], body["spec"]["thinPool"]) == ("thin", "pool0")
    assert "cowSize" not in body["spec"]
    snapshot = res.resource_snapshot(stored(body, Phase.READY))
    assert snapshot is not None and snapshot.thin and snapshot.lv.pool_lv == "pool0"

    thick = res.snapshot_resource(SnapshotPlan(thin.ref, "t", source_volume(thin=False), MiB))
    overflowed = {"type": llv.HEALTHY_CONDITION, "status": "False", "reason": llv.SNAPSHOT_INVALID_REASON}
    snapshot = res.resource_snapshot(stored(thick, Phase.READY, conditions=[overflowed]))
    assert snapshot is not None and not snapshot.ready and snapshot.invalid


def test_a_snapshot_being_deleted_reads_like_an_interrupted_deletion() -> None:
    thin = SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("t")), "t", source_volume(thin=True), None)
    obj = stored(res.snapshot_resource(thin), Phase.READY)
    obj["metadata"]["deletionTimestamp"] = "2025-03-01T11:00:00Z"
    snapshot = res.resource_snapshot(obj)
    assert snapshot is not None and deleting_snapshot(snapshot), "hidden from listing and restores"


# -- resources as the driver sees them -------------------------------------------------------------


def test_a_volume_is_ready_only_in_phase_ready_and_reports_the_agents_size() -> None:
    plan = restore_plan()
    body = res.volume_resource(plan)
    for phase in (None, Phase.PENDING, Phase.CREATING, Phase.FAILED, Phase.DELETING):
        volume = res.resource_volume(stored(body, phase))
        assert volume is not None and not is_ready(volume) and CREATING_TAG in volume.lv.tags
    volume = res.resource_volume(stored(body, Phase.READY, currentSize=3 * GiB + 4 * MiB))
    assert volume is not None and is_ready(volume)
    assert volume.size_bytes == 3 * GiB + 4 * MiB, "the size lvs reported, not the spec's"
    assert volume.requested_bytes == plan.requested_bytes
    assert volume.id == str(plan.ref) and volume.lvm_type is LvmType.THIN and volume.thin_pool == "pool0"
    assert plan.content is not None and volume.source == plan.content.source
    assert volume.lv.origin == snapshot_lv_name("snap-1"), "a thin-snapshot fill keeps its origin"
    assert res.resource_snapshot(stored(body, Phase.READY)) is None


def test_mismatch_names_what_differs_but_not_the_placement() -> None:
    body = stored(res.volume_resource(volume_plan()))
    moved = volume_plan(ref=make_ref("node-2", "other", volume_lv_name("pvc-1")))
    assert res.mismatch(body, moved) is None, "a retry may place elsewhere: the first resource wins"
    assert "asks for" in (res.mismatch(body, volume_plan(requested_bytes=GiB)) or "")
    assert "lvmType" in (res.mismatch(body, volume_plan(placement=Placement(VG, 2 * GiB, LvmType.RAID1))) or "")
    assert "made for xfs" in (res.mismatch(body, volume_plan(fs_type="ext4")) or "")
    assert res.mismatch(body, volume_plan(fs_type=None)) is None, "a block request does not name a filesystem"
    assert "source" in (res.mismatch(body, restore_plan()) or "")


def test_a_resource_naming_no_usable_node_is_internal() -> None:
    body = stored(res.volume_resource(volume_plan()))
    body["spec"]["nodeName"] = "bad node"
    with pytest.raises(Internal, match="usable node"):
        llv.ref(body)


# -- the schema keeps every field the code writes ----------------------------------------------------


def _paths(value: Any, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return {prefix}
    found: set[str] = set()
    for key, item in value.items():
        found |= _paths(item, f"{prefix}.{key}" if prefix else key)
    return found


def _declared(schema: dict[str, Any], path: str) -> bool:
    node = schema
    for part in path.split("."):
        if "properties" in node and part in node["properties"]:
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def test_the_crd_declares_every_spec_field_written_so_the_apiserver_prunes_none() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    source = source_volume(thin=True)
    bodies = [
        res.volume_resource(restore_plan()),
        res.volume_resource(volume_plan(placement=Placement(VG, 2 * GiB, LvmType.STRIPING, 2, 64 * 1024))),
        res.snapshot_resource(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", source, None)),
        res.snapshot_resource(SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", source, MiB)),
    ]
    for body in bodies:
        for path in _paths(body["spec"]):
            assert _declared(schema["properties"]["spec"], path), f"spec.{path} would be pruned"
    status = {"phase": "Ready", "currentSize": 1, "volumeId": "x", "message": "m", "code": "Internal",
              "observedGeneration": 1}  # fmt: skip
    for path in _paths(status):
        assert _declared(schema["properties"]["status"], path)
