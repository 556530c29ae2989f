"""Planning VG initialisation from ``spec.resourceToBeInited.vgs``: create, leave alone, or refuse.

A VG that exists under that name is left alone (it is never extended or changed; growth done by
an operator with vgextend or pvresize shows in the next discovery). Otherwise every device must be
safe to take: found on this node in the agent's device scope, writable, without partitions, holders
or mounts, not an LVM physical volume, and without any signature ``blkid -p`` can see. One unsafe
device refuses the whole VG, with a reason per device an operator can act on; nothing is touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from localcsi.core.errors import InvalidArgument
from localcsi.core.names import validate_vg_name
from localcsi.core.nodestorage import BlockDevice, NameFilter, NodeInventory, StorageSpec, VgToInit

NOT_PROBED = "not probed"


@dataclass(frozen=True)
class VgCreate:
    name: str
    devices: tuple[str, ...]  # /dev/<kernel name> paths


@dataclass(frozen=True)
class Refusal:
    vg: str
    device: str  # "" when the VG itself is refused
    reason: str

    def __str__(self) -> str:
        where = f"VG {self.vg}, device {self.device}" if self.device else f"VG {self.vg}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class VgInitPlan:
    create: tuple[VgCreate, ...] = ()
    existing: tuple[str, ...] = ()
    refusals: tuple[Refusal, ...] = ()

    @property
    def refused_vgs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.vg for r in self.refusals))


def devices_to_probe(spec: StorageSpec, inventory: NodeInventory) -> tuple[str, ...]:
    """Paths of the devices that may be initialised this cycle: only those need ``blkid -p``."""
    paths: list[str] = []
    for vg in spec.vgs_to_init:
        if inventory.vg(vg.name) is None:
            paths += [dev.path for name in vg.devices if (dev := inventory.device(name)) is not None]
    return tuple(dict.fromkeys(paths))


@dataclass(frozen=True)
class _Context:
    inventory: NodeInventory
    in_scope: frozenset[str]
    offered: frozenset[str]
    signatures: Mapping[str, str | None]


def _device_checks(device: BlockDevice, context: _Context) -> Iterator[str]:
    """Every reason not to take ``device``, most fundamental first."""
    if device.path not in context.in_scope:
        yield "outside the agent's device scope (disks named like sdX, vdX, xvdX, nvmeXnY and their partitions)"
    if device.path in context.offered:
        yield "also offered as an exclusive device by spec.listConfig.devices; exclude it there first"
    if device.read_only:
        yield "the device is read-only"
    if device.partitions:
        yield f"has partitions ({', '.join(device.partitions)}); name a partition, or remove the partition table"
    if device.holders:
        yield f"in use by {', '.join(device.holders)} (device-mapper or md); stop that first"
    if device.mountpoint:
        yield f"mounted at {device.mountpoint}; unmount it first"
    pv = context.inventory.pv(device.path)
    if pv is not None:
        yield (
            f"already a physical volume of volume group {pv.vg}"
            if pv.vg
            else "already an LVM physical volume in no volume group; run pvremove on it if it is unused"
        )
    signature = context.signatures.get(device.path, NOT_PROBED)
    if signature == NOT_PROBED:
        yield "could not be probed with blkid; see the agent log"
    elif signature is not None:
        yield f"blkid finds {signature} on it; wipe it yourself (wipefs -a) if its data is not needed"


def plan_vg_init(
    spec: StorageSpec,
    inventory: NodeInventory,
    signatures: Mapping[str, str | None],
    in_scope: frozenset[str],
    offered: frozenset[str] = frozenset(),
) -> VgInitPlan:
    """What to do for each VG to initialise.

    ``signatures``: device path -> what ``blkid -p`` found (None: nothing) for devices_to_probe;
    ``in_scope``: paths of the devices the agent reports; ``offered``: filteredStorageInfo.devices.
    """
    context = _Context(inventory, in_scope, offered, signatures)
    create: list[VgCreate] = []
    existing: list[str] = []
    refusals: list[Refusal] = []
    taken: dict[str, str] = {}
    for vg in spec.vgs_to_init:
        if inventory.vg(vg.name) is not None:
            existing.append(vg.name)
            continue
        problems = _vg_problems(vg, spec.vgs, context, taken)
        if problems:
            refusals += problems
        else:
            paths = tuple(dev.path for name in vg.devices if (dev := inventory.device(name)) is not None)
            create.append(VgCreate(vg.name, paths))
    return VgInitPlan(tuple(create), tuple(existing), tuple(refusals))


def _vg_problems(vg: VgToInit, vg_filter: NameFilter, context: _Context, taken: dict[str, str]) -> list[Refusal]:
    try:
        validate_vg_name(vg.name)
    except InvalidArgument as error:
        return [Refusal(vg.name, "", error.message)]
    if not vg.devices:
        return [Refusal(vg.name, "", "no devices are listed for it")]
    if not vg_filter.accepts(vg.name):
        return [Refusal(vg.name, "", "its name is not selected by spec.listConfig.vgs, so it would never be used")]
    refusals = []
    for name in vg.devices:
        device = context.inventory.device(name)
        if device is None:
            reason = "not found on this node (lsblk does not list it); use its /dev/<kernel name> path"
        else:
            reason = next(_device_checks(device, context), "")
            if not reason and device.path in taken:
                reason = f"also listed for volume group {taken[device.path]}"
            taken.setdefault(device.path, vg.name)
        if reason:
            refusals.append(Refusal(vg.name, name, reason))
    return refusals
