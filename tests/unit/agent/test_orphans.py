"""Which LVs are orphans, and when one is due for removal."""

from __future__ import annotations

import pytest

from localcsi.agent.orphans import OrphanTracker, claimed, find_orphans
from localcsi.core.model import LogicalVolume
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.sizes import GiB
from localcsi.core.tags import OWNER_TAG, LvKind, LvMetadata, encode_tags

pytestmark = pytest.mark.unit


def ours(csi_name: str, vg: str = "pool0", kind: LvKind = LvKind.VOLUME) -> LogicalVolume:
    name = volume_lv_name(csi_name) if kind is LvKind.VOLUME else snapshot_lv_name(csi_name)
    return LogicalVolume(vg, name, GiB, "-wi-a-----", tags=encode_tags(LvMetadata(kind, csi_name, GiB)))


def resource(lv: LogicalVolume, vg: str | None = None) -> dict[str, object]:
    spec = {} if vg == "" else {"vgName": vg or lv.vg}
    return {"metadata": {"name": lv.name}, "spec": spec}


VOLUME, SNAPSHOT, OTHER = ours("pvc-1"), ours("snap-1", kind=LvKind.SNAPSHOT), ours("pvc-2")
POOL = LogicalVolume("pool0", "thinpool", GiB, "twi-aotz--", tags=(OWNER_TAG,))
FOREIGN = LogicalVolume("pool0", "home", GiB, "-wi-ao----")
DAMAGED = LogicalVolume("pool0", "csi-bad", GiB, "-wi-a-----", tags=(OWNER_TAG, "localcsi.io/kind=volume"))


def test_orphans_are_our_volumes_and_snapshots_no_resource_names() -> None:
    lvs = [VOLUME, SNAPSHOT, OTHER, POOL, FOREIGN, DAMAGED]
    keys = claimed([resource(VOLUME), resource(SNAPSHOT)])
    assert find_orphans(lvs, keys) == [OTHER]  # not the pool, nor a foreign LV, nor one with edited tags


def test_an_inline_ephemeral_volume_is_never_an_orphan() -> None:
    """It has no resource by design; the node plugin collects it once its pod is gone."""
    inline = ours("csi-" + "ab" * 32)
    pod_tag = "localcsi.io/ephemeral-pod=/var/lib/kubelet/pods/p"
    inline = LogicalVolume(inline.vg, inline.name, GiB, inline.attr, tags=(*inline.tags, pod_tag))
    assert find_orphans([inline, OTHER], claimed([])) == [OTHER]


def test_a_resource_in_another_vg_does_not_claim_and_one_without_a_vg_claims_everywhere() -> None:
    assert find_orphans([VOLUME], claimed([resource(VOLUME, vg="elsewhere")])) == [VOLUME]
    assert find_orphans([VOLUME], claimed([resource(VOLUME, vg="")])) == []


def test_new_orphans_are_reported_once_and_collection_is_off_by_default() -> None:
    now = [0.0]
    tracker = OrphanTracker(grace_seconds=60, collect=False, clock=lambda: now[0])
    first = tracker.observe([VOLUME])
    assert first.new == (VOLUME,) and first.due == () and first.count == 1
    now[0] = 1000
    later = tracker.observe([VOLUME])
    assert later.new == () and later.due == ()


def test_an_orphan_is_due_after_the_whole_grace_period_only() -> None:
    now = [0.0]
    tracker = OrphanTracker(grace_seconds=60, collect=True, clock=lambda: now[0])
    tracker.observe([VOLUME])
    now[0] = 59
    assert tracker.observe([VOLUME, OTHER]).due == ()
    now[0] = 60
    assert tracker.observe([VOLUME, OTHER]).due == (VOLUME,)
    now[0] = 70
    tracker.observe([OTHER])  # VOLUME was claimed meanwhile: its clock starts again
    now[0] = 125
    report = tracker.observe([VOLUME, OTHER])
    assert report.due == (OTHER,) and report.new == (VOLUME,)


def test_collection_needs_a_grace_period() -> None:
    assert not OrphanTracker(grace_seconds=0, collect=True).collect
