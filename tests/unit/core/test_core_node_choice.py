"""Immediate binding: the node with the most room for the requested kind of volume goes first."""

from __future__ import annotations

import pytest
from core_factories import pool, vg

from localcsi.core.node_choice import most_free_first
from localcsi.core.params import LvmType, VolumeParams

pytestmark = pytest.mark.unit


def test_most_free_first_in_the_requested_vg() -> None:
    storage = {
        "a": ((vg("fast", 10), vg("slow", 1)), ()),
        "b": ((vg("fast", 3), vg("slow", 50)), ()),
        "c": ((vg("fast", 6),), ()),
    }
    assert most_free_first(storage, VolumeParams(vg_name="fast")) == ["a", "c", "b"]
    assert most_free_first(storage, VolumeParams(vg_name="slow")) == ["b", "a", "c"]
    assert most_free_first(storage, VolumeParams()) == ["b", "a", "c"], "without vgName: all VGs count"


def test_room_is_for_the_volume_type_and_ties_keep_name_order() -> None:
    storage = {
        "thick": ((vg("v", 40),), ()),
        "thin": ((vg("v", 1),), (pool("v", 10, 2),)),
        "also-thin": ((vg("v", 1),), (pool("v", 10, 2),)),
    }
    thin = VolumeParams(lvm_type=LvmType.THIN, thin_pool="localcsi-thinpool")
    assert most_free_first(storage, thin) == ["also-thin", "thin", "thick"]
    assert most_free_first(storage, VolumeParams())[0] == "thick"
