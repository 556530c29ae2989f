"""Standalone mode's reads (``localcsi.driver.local_lvm_reads``), through LocalLvmBackend over an in-memory
lvm2: only this node and its allowed VGs are seen, and an LV with damaged tags is skipped."""

from __future__ import annotations

from dataclasses import replace

import pytest
from local_backend_fakes import NODE, VG, Clock, local_backend, make_volume, node_lvm, plan

from localcsi.core.model import LogicalVolume
from localcsi.core.names import volume_lv_name
from localcsi.core.sizes import GiB
from localcsi.testing.fake_lvm import FakeDevices

pytestmark = pytest.mark.unit


def test_only_allowed_vgs_and_healthy_tags_are_seen() -> None:
    lvm = node_lvm()
    backend = local_backend(lvm, FakeDevices(lvm.calls), Clock())
    lvm.add(LogicalVolume("other-vg", volume_lv_name("x"), GiB, "-wi-a-----", tags=plan("x").tags()))
    damaged = ("localcsi.io", "localcsi.io/kind=volume")
    lvm.add(LogicalVolume(VG, volume_lv_name("bad"), GiB, "-wi-a-----", tags=damaged))
    good = make_volume(backend, "good")
    assert [v.id for v in backend.volumes()] == [good.id], "foreign VGs and damaged tags are skipped"
    assert [g.name for g in backend.storage(NODE).vgs] == [VG]
    assert backend.storage("node-2").vgs == ()
    assert backend.get_volume(replace(good.ref, node="node-2")) is None
    assert [p.name for p in backend.storage(NODE).pools] == ["localcsi-thinpool"]
