from datetime import UTC, datetime

import pytest
from core_factories import lv, vg

from localcsi.core.errors import Internal
from localcsi.core.model import (
    LAYOUTS,
    NEW_ATTRS,
    PhysicalVolume,
    VolumeGroup,
    snapshot_from_lv,
    thin_pools,
    volume_from_lv,
)
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.sizes import GiB
from localcsi.core.tags import OWNER_TAG, LvKind, LvMetadata, Source, SourceKind, encode_tags

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("attr", "flags"),
    [
        ("-wi-ao----", {"is_active", "is_open"}),
        ("-wi-------", set()),
        ("twi-aotz--", {"is_thin_pool", "is_active", "is_open"}),
        ("Vwi-a-tz--", {"is_thin_volume", "is_active"}),
        ("Vwi---tz-k", {"is_thin_volume", "skips_activation"}),
        ("swi-a-s---", {"is_cow_snapshot", "is_active"}),
        ("swi-I-s---", {"is_cow_snapshot", "is_invalid_snapshot"}),
        ("owi-aos---", {"is_cow_origin", "is_active", "is_open"}),
    ],
)
def test_lv_attr_flags(attr: str, flags: set[str]) -> None:
    names = [
        "is_active",
        "is_open",
        "is_thin_pool",
        "is_thin_volume",
        "is_cow_snapshot",
        "is_cow_origin",
        "is_invalid_snapshot",
        "skips_activation",
    ]
    volume = lv(attr=attr)
    assert {name for name in names if getattr(volume, name)} == flags


@pytest.mark.parametrize(
    ("layout", "lvm_type"),
    [
        (("linear",), LvmType.LINEAR),
        (("striped",), LvmType.STRIPING),
        (("raid", "raid1"), LvmType.RAID1),
        (("thin", "sparse"), LvmType.THIN),
        (("thin", "pool"), None),
        ((), None),
    ],
)
def test_lvm_type_comes_from_the_layout(layout: tuple[str, ...], lvm_type: LvmType | None) -> None:
    assert lv(layout=layout).lvm_type is lvm_type


@pytest.mark.parametrize("lvm_type", list(LvmType))
def test_a_new_lv_of_each_type_reads_back_as_that_type(lvm_type: LvmType) -> None:
    new = lv(layout=LAYOUTS[lvm_type], attr=NEW_ATTRS[lvm_type])
    assert new.lvm_type is lvm_type
    assert new.is_active and not new.is_open
    assert new.is_thin_volume is (lvm_type is LvmType.THIN)


def test_health_flag_is_the_ninth_attr_character() -> None:
    assert lv(attr="rwi-a-r-p-").health_flag == "p"
    assert lv(attr="-wi-a-----").health_flag == ""


def test_device_paths_double_hyphens_for_device_mapper() -> None:
    volume = lv(name="csi-ab", vg="my-vg")
    assert volume.device_path == "/dev/my-vg/csi-ab"
    assert volume.mapper_path == "/dev/mapper/my--vg-csi--ab"


def test_thin_pools_sum_virtual_sizes_of_their_thin_volumes() -> None:
    lvs = [
        lv("pool", "twi-aotz--", size_bytes=10 * GiB, data_percent=12.5, metadata_percent=3.0),
        lv("other", "twi-aotz--", size_bytes=5 * GiB),
        lv("a", "Vwi-a-tz--", size_bytes=4 * GiB, pool_lv="pool"),
        lv("snap", "Vwi---tz-k", size_bytes=4 * GiB, pool_lv="pool", origin="a"),
        lv("b", "Vwi-a-tz--", size_bytes=3 * GiB, pool_lv="other"),
        lv("c", "Vwi-a-tz--", size_bytes=7 * GiB, pool_lv="pool", vg="vg1"),
        lv("thick", "-wi-a-----", size_bytes=50 * GiB),
    ]
    pools = {p.name: p for p in thin_pools(lvs)}
    assert pools["pool"].virtual_bytes == 8 * GiB
    assert pools["other"].virtual_bytes == 3 * GiB
    assert pools["pool"].used_bytes == int(10 * GiB * 0.125)
    assert pools["pool"].metadata_percent == 3.0


def test_pv_free_bytes_lists_allocatable_pvs_largest_first() -> None:
    pvs = (
        PhysicalVolume("/dev/a", "vg", 10, 3),
        PhysicalVolume("/dev/b", "vg", 10, 7),
        PhysicalVolume("/dev/c", "vg", 10, 9, attr="---"),
        PhysicalVolume("/dev/d", "vg", 10, 8, attr="a-m"),
    )
    group = VolumeGroup("vg", 40, 27, 1, 4, pvs=pvs)
    assert group.pv_free_bytes == (7, 3)


def test_pv_free_bytes_without_pv_details() -> None:
    assert VolumeGroup("vg", 10, 6, 1, 1).pv_free_bytes == (6,)
    assert VolumeGroup("vg", 10, 6, 1, 2).pv_free_bytes == ()


def test_vg_attr_flags() -> None:
    assert vg("a", 1).writable and not vg("a", 1).partial
    assert vg("a", 1, attr="wz-pn-").partial
    assert not vg("a", 1, attr="rz--n-").writable


def test_volume_read_back_from_its_lv() -> None:
    source = Source(SourceKind.SNAPSHOT, "node1/vg0/" + snapshot_lv_name("s1"))
    tags = encode_tags(LvMetadata(LvKind.VOLUME, "pvc-1", 1000, source, "xfs", "mount"))
    name = volume_lv_name("pvc-1")
    volume = volume_from_lv("node1", lv(name, tags=tags, size_bytes=4 * 2**20, layout=("striped",)))
    assert volume is not None
    assert volume.id == f"node1/vg0/{name}"
    assert (volume.name, volume.size_bytes, volume.requested_bytes) == ("pvc-1", 4 * 2**20, 1000)
    assert (volume.lvm_type, volume.source, volume.fs_type) == (LvmType.STRIPING, source, "xfs")


def test_lvs_that_are_not_our_volumes_are_skipped() -> None:
    assert volume_from_lv("n", lv("lvol0")) is None
    volume_tags = encode_tags(LvMetadata(LvKind.VOLUME, "x", 1))
    assert volume_from_lv("n", lv("lvol0", tags=volume_tags)) is None
    snapshot_tags = encode_tags(LvMetadata(LvKind.SNAPSHOT, "x", 1))
    assert volume_from_lv("n", lv(snapshot_lv_name("x"), tags=snapshot_tags)) is None
    assert snapshot_from_lv("n", lv(volume_lv_name("x"), tags=volume_tags)) is None


def test_corrupt_tags_surface_as_internal() -> None:
    with pytest.raises(Internal):
        volume_from_lv("n", lv(volume_lv_name("x"), tags=(OWNER_TAG, "localcsi.io/kind=volume")))


def test_thick_snapshot_read_back() -> None:
    origin = volume_lv_name("pvc-1")
    tags = encode_tags(LvMetadata(LvKind.SNAPSHOT, "snap-a", 2 * GiB, Source(SourceKind.VOLUME, f"n/vg0/{origin}")))
    created = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    row = lv(snapshot_lv_name("snap-a"), "swi-a-s---", tags=tags, origin=origin, size_bytes=GiB, created=created)
    snap = snapshot_from_lv("n", row)
    assert snap is not None
    assert (snap.name, snap.source_volume_id, snap.size_bytes) == ("snap-a", f"n/vg0/{origin}", 2 * GiB)
    assert snap.ready and not snap.thin and not snap.invalid and snap.created == created


def test_invalid_thick_snapshot_is_not_ready() -> None:
    tags = encode_tags(LvMetadata(LvKind.SNAPSHOT, "s", GiB))
    snap = snapshot_from_lv("n", lv(snapshot_lv_name("s"), "swi-I-s---", tags=tags, origin="csi-0"))
    assert snap is not None and not snap.ready and snap.invalid
    assert snap.source_volume_id == "n/vg0/csi-0"  # falls back to the LV's origin


def test_thin_snapshot_read_back() -> None:
    tags = encode_tags(LvMetadata(LvKind.SNAPSHOT, "s", GiB, Source(SourceKind.VOLUME, "n/vg0/csi-0")))
    snap = snapshot_from_lv("n", lv(snapshot_lv_name("s"), "Vwi-a-tz--", tags=tags, pool_lv="pool"))
    assert snap is not None and snap.thin and snap.ready
