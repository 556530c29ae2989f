"""NodeLocalStorage status as placement sees it."""

from __future__ import annotations

from typing import Any

import pytest

from localcsi.core.errors import ResourceExhausted
from localcsi.core.params import LvmType, VolumeParams
from localcsi.core.placement import place
from localcsi.core.sizes import GiB, MiB
from localcsi.driver.cluster_storage import DEFAULT_EXTENT_BYTES, node_storage

pytestmark = pytest.mark.unit


def group(name: str, available: int, allocatable: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "total": 20 * GiB, "available": available, "allocatable": allocatable,
            "physicalVolumes": ["/dev/vdb"], "condition": "DiskReady", **extra}  # fmt: skip


def nls(*groups: dict[str, Any], managed: list[str] | None = None) -> dict[str, Any]:
    names = [g["name"] for g in groups] if managed is None else managed
    return {
        "metadata": {"name": "node-1"},
        "spec": {"nodeName": "node-1"},
        "status": {"nodeStorageInfo": {"volumeGroups": list(groups)}, "filteredStorageInfo": {"volumeGroups": names}},
    }


def test_only_filtered_vgs_are_offered_and_free_space_excludes_the_reservation() -> None:
    storage = node_storage(nls(group("a", 10 * GiB, 7 * GiB), group("foreign", 9 * GiB, 9 * GiB), managed=["a"]))
    assert storage.node == "node-1"
    [vg] = storage.vgs
    assert (vg.name, vg.size_bytes, vg.free_bytes, vg.extent_size) == ("a", 20 * GiB, 7 * GiB, DEFAULT_EXTENT_BYTES)
    assert vg.pv_free_bytes == (7 * GiB,), "a one-PV VG without PV details still places linear volumes"
    with pytest.raises(ResourceExhausted, match="needs"):
        place(storage.vgs, storage.pools, VolumeParams(), 8 * GiB, 0)
    assert place(storage.vgs, storage.pools, VolumeParams(), 7 * GiB, 0).vg == "a"


def test_pv_details_allow_striping_and_the_reservation_comes_off_the_freest_pv() -> None:
    pvs = [{"name": "/dev/vdb", "total": 10 * GiB, "available": 6 * GiB},
           {"name": "/dev/vdc", "total": 10 * GiB, "available": 4 * GiB}]  # fmt: skip
    storage = node_storage(nls(group("a", 10 * GiB, 8 * GiB, physicalVolumeInfo=pvs, extentSize=8 * MiB)))
    [vg] = storage.vgs
    assert [pv.name for pv in vg.pvs] == ["/dev/vdb", "/dev/vdc"], "order kept"
    assert [pv.free_bytes for pv in vg.pvs] == [4 * GiB, 4 * GiB]
    assert vg.extent_size == 8 * MiB and vg.pv_count == 2
    striped = place(storage.vgs, (), VolumeParams(lvm_type=LvmType.STRIPING, stripes=2), 8 * GiB, 0)
    assert striped.stripes == 2


def test_thin_pools_and_faulty_vgs() -> None:
    pool = {"name": "pool0", "total": 4 * GiB, "dataPercent": 12.5, "metadataPercent": 3, "virtual": 3 * GiB}
    storage = node_storage(nls(group("a", GiB, GiB, thinPools=[pool]), group("b", GiB, GiB, condition="DiskFault")))
    [found] = storage.pools
    assert (found.vg, found.name, found.size_bytes, found.virtual_bytes) == ("a", "pool0", 4 * GiB, 3 * GiB)
    assert found.data_percent == 12.5
    assert storage.pool("a", "pool0") is found
    faulty = storage.vg("b")
    assert faulty is not None and not faulty.writable, "placement skips a faulty VG"


def test_a_node_without_status_offers_nothing() -> None:
    storage = node_storage({"metadata": {"name": "node-2"}, "spec": {"nodeName": "node-2"}})
    assert (storage.node, storage.vgs, storage.pools) == ("node-2", (), ())
