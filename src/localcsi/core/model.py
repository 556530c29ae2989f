"""The storage model: what LVM reports (PVs, VGs, LVs, thin pools), and the CSI volumes and snapshots
read back from it. All frozen; built by the lvm adapter, consumed by placement and the services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from localcsi.core.ids import LvRef, make_ref
from localcsi.core.names import SNAPSHOT_LV_PREFIX, VOLUME_LV_PREFIX
from localcsi.core.params import LvmType
from localcsi.core.tags import LvKind, LvMetadata, Source, SourceKind, decode_tags

# lvm2's segment types for an LV of each LvmType, as `lvs -o lv_layout` reports them.
LAYOUTS: Final[Mapping[LvmType, tuple[str, ...]]] = MappingProxyType(
    {
        LvmType.LINEAR: ("linear",),
        LvmType.STRIPING: ("striped",),
        LvmType.RAID1: ("raid", "raid1"),
        LvmType.THIN: ("thin", "sparse"),
    }
)
# lv_attr of an LV of each LvmType that lvcreate just made (active, not open).
NEW_ATTRS: Final[Mapping[LvmType, str]] = MappingProxyType(
    {
        LvmType.LINEAR: "-wi-a-----",
        LvmType.STRIPING: "-wi-a-----",
        LvmType.RAID1: "rwi-a-r---",
        LvmType.THIN: "Vwi-a-tz--",
    }
)


@dataclass(frozen=True)
class PhysicalVolume:
    name: str  # device path, e.g. /dev/vdb
    vg: str  # "" for a PV in no VG
    size_bytes: int
    free_bytes: int
    attr: str = "a--"  # pv_attr: (a)llocatable, e(x)ported, (m)issing

    @property
    def allocatable(self) -> bool:
        return self.attr[:1] == "a" and not self.missing

    @property
    def missing(self) -> bool:
        return self.attr[2:3] == "m"


@dataclass(frozen=True)
class VolumeGroup:
    name: str
    size_bytes: int
    free_bytes: int
    extent_size: int
    pv_count: int
    lv_count: int = 0
    attr: str = "wz--n-"  # vg_attr: (w)ritable, resi(z)eable, e(x)ported, (p)artial, alloc, (c)lustered
    uuid: str = ""
    tags: tuple[str, ...] = ()
    pvs: tuple[PhysicalVolume, ...] = ()  # filled in when PVs were listed too

    @property
    def writable(self) -> bool:
        return self.attr[:1] == "w"

    @property
    def partial(self) -> bool:
        return self.attr[3:4] == "p"

    @property
    def pv_free_bytes(self) -> tuple[int, ...]:
        """Free bytes on each allocatable PV, largest first; the whole VG's free space if PVs are unknown."""
        if not self.pvs:
            return (self.free_bytes,) if self.pv_count == 1 else ()
        return tuple(sorted((pv.free_bytes for pv in self.pvs if pv.allocatable), reverse=True))


@dataclass(frozen=True)
class LogicalVolume:
    """One row of ``lvs``. ``attr`` is lvm2's 10-character lv_attr; see lvs(8)."""

    vg: str
    name: str
    size_bytes: int
    attr: str
    uuid: str = ""
    layout: tuple[str, ...] = ()  # lv_layout, e.g. ("linear",), ("raid", "raid1"), ("thin", "sparse")
    tags: tuple[str, ...] = ()
    pool_lv: str = ""
    origin: str = ""
    origin_size_bytes: int | None = None
    data_percent: float | None = None
    metadata_percent: float | None = None
    health_status: str = ""
    created: datetime | None = None
    kernel_major: int | None = None  # None while inactive
    kernel_minor: int | None = None

    def _attr(self, index: int) -> str:
        return self.attr[index : index + 1]

    @property
    def is_thin_pool(self) -> bool:
        return self._attr(0) == "t"

    @property
    def is_thin_volume(self) -> bool:
        return self._attr(0) == "V"

    @property
    def is_cow_snapshot(self) -> bool:
        return self._attr(0) in ("s", "S")

    @property
    def is_cow_origin(self) -> bool:
        """A thick LV with copy-on-write snapshots: removing it would remove them too."""
        return self._attr(0) in ("o", "O")

    @property
    def is_active(self) -> bool:
        return self._attr(4) == "a"

    @property
    def is_open(self) -> bool:
        return self._attr(5) == "o"

    @property
    def is_invalid_snapshot(self) -> bool:
        """A thick snapshot whose copy-on-write space ran out: its content is lost."""
        return self._attr(4) in ("I", "S")

    @property
    def skips_activation(self) -> bool:
        return self._attr(9) == "k"

    @property
    def health_flag(self) -> str:
        """lv_attr's health character: p(artial), r(efresh), m(ismatch), F(ailed), D(ata full), M(eta ro)."""
        return self._attr(8).strip("-")

    @property
    def lvm_type(self) -> LvmType | None:
        """The LvmType whose segment types (LAYOUTS) this LV shows; None for a pool or anything else."""
        for lvm_type in (LvmType.THIN, LvmType.RAID1, LvmType.STRIPING, LvmType.LINEAR):  # the most specific first
            if all(segment in self.layout for segment in LAYOUTS[lvm_type]):
                return lvm_type
        return None

    @property
    def device_path(self) -> str:
        return f"/dev/{self.vg}/{self.name}"

    @property
    def mapper_path(self) -> str:
        """The device-mapper node; hyphens inside names are doubled, as lvm2 does."""
        return f"/dev/mapper/{self.vg.replace('-', '--')}-{self.name.replace('-', '--')}"

    @property
    def metadata(self) -> LvMetadata | None:
        return decode_tags(self.tags, lv=f"{self.vg}/{self.name}")


@dataclass(frozen=True)
class ThinPool:
    vg: str
    name: str
    size_bytes: int
    data_percent: float
    metadata_percent: float
    virtual_bytes: int  # sum of the virtual sizes of the thin LVs (snapshots included) in the pool

    @property
    def used_bytes(self) -> int:
        return int(self.size_bytes * self.data_percent / 100)


def thin_pools(lvs: Iterable[LogicalVolume]) -> tuple[ThinPool, ...]:
    """Thin pools with their virtual allocation, from one listing of a VG's LVs."""
    lvs = tuple(lvs)
    virtual: dict[tuple[str, str], int] = {}
    for lv in lvs:
        if lv.is_thin_volume and lv.pool_lv:
            key = (lv.vg, lv.pool_lv)
            virtual[key] = virtual.get(key, 0) + lv.size_bytes
    return tuple(
        ThinPool(
            vg=lv.vg,
            name=lv.name,
            size_bytes=lv.size_bytes,
            data_percent=lv.data_percent or 0.0,
            metadata_percent=lv.metadata_percent or 0.0,
            virtual_bytes=virtual.get((lv.vg, lv.name), 0),
        )
        for lv in lvs
        if lv.is_thin_pool
    )


@dataclass(frozen=True)
class Volume:
    id: str
    ref: LvRef
    name: str  # the CSI name
    size_bytes: int  # what the LV holds now
    requested_bytes: int  # required_bytes of the CreateVolume that made it
    lvm_type: LvmType | None
    source: Source | None
    fs_type: str | None
    access_type: str | None
    lv: LogicalVolume = field(repr=False)

    @property
    def thin_pool(self) -> str | None:
        return self.lv.pool_lv or None


@dataclass(frozen=True)
class Snapshot:
    id: str
    ref: LvRef
    name: str  # the CSI name
    source_volume_id: str
    size_bytes: int  # the restore size: the source volume's size when the snapshot was taken
    thin: bool
    ready: bool  # False for a thick snapshot that overflowed (invalid); it never becomes ready again
    created: datetime | None
    lv: LogicalVolume = field(repr=False)

    @property
    def invalid(self) -> bool:
        return self.lv.is_invalid_snapshot


def volume_from_lv(node: str, lv: LogicalVolume) -> Volume | None:
    """The CSI volume an LV holds; None when the LV is not one of this driver's volumes."""
    if not lv.name.startswith(VOLUME_LV_PREFIX):
        return None
    meta = lv.metadata
    if meta is None or meta.kind is not LvKind.VOLUME:
        return None
    ref = make_ref(node, lv.vg, lv.name)
    return Volume(
        id=str(ref),
        ref=ref,
        name=meta.name,
        size_bytes=lv.size_bytes,
        requested_bytes=meta.size_bytes,
        lvm_type=lv.lvm_type,
        source=meta.source,
        fs_type=meta.fs_type,
        access_type=meta.access_type,
        lv=lv,
    )


def snapshot_from_lv(node: str, lv: LogicalVolume) -> Snapshot | None:
    """The CSI snapshot an LV holds; None when the LV is not one of this driver's snapshots."""
    if not lv.name.startswith(SNAPSHOT_LV_PREFIX):
        return None
    meta = lv.metadata
    if meta is None or meta.kind is not LvKind.SNAPSHOT:
        return None
    if meta.source is None or meta.source.kind is not SourceKind.VOLUME:
        source_id = str(make_ref(node, lv.vg, lv.origin)) if lv.origin else ""
    else:
        source_id = meta.source.id
    ref = make_ref(node, lv.vg, lv.name)
    return Snapshot(
        id=str(ref),
        ref=ref,
        name=meta.name,
        source_volume_id=source_id,
        size_bytes=meta.size_bytes or lv.origin_size_bytes or lv.size_bytes,
        thin=lv.is_thin_volume,
        ready=not lv.is_invalid_snapshot,
        created=lv.created,
        lv=lv,
    )
