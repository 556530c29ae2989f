"""Exclusive volumes (Device and MountPoint): one free disk or mount point each, matched together.

A greedy pick can miss an assignment that exists (a small unconstrained volume taking the only SSD
that another volume needs), so the requests are matched to disks as a bipartite matching.
"""

from __future__ import annotations

from collections.abc import Sequence

from localcsi.core.params import VolumeType
from localcsi.core.scheduling import DiskReport, NodeCapacity, PodDemand, VolumeRequest
from localcsi.core.scheduling_charges import HELD_NOTE, Charge, Held
from localcsi.core.sizes import format_bytes


def match_disks(requests: Sequence[VolumeRequest], disks: Sequence[DiskReport]) -> list[int] | int:
    """A disk index for every request (bipartite matching by augmenting paths, each request trying
    the disks in the order given: ``NodeCapacity.free_disks`` is smallest first), or the index of
    the first request that cannot get one."""
    candidates = [
        [
            i
            for i, d in enumerate(disks)
            if d.kind is r.volume_type
            and d.size_bytes >= r.size_bytes
            and (r.media_type is None or d.media_type is r.media_type)
        ]
        for r in requests
    ]
    owner: dict[int, int] = {}

    def assign(request: int, seen: set[int]) -> bool:
        for disk in candidates[request]:
            if disk in seen:
                continue
            seen.add(disk)
            if disk not in owner or assign(owner[disk], seen):
                owner[disk] = request
                return True
        return False

    for request in range(len(requests)):
        if not assign(request, set()):
            return request
    chosen = [0] * len(requests)
    for disk, request in owner.items():
        chosen[request] = disk
    return chosen


def exclusive_need(request: VolumeRequest) -> str:
    media = f" {request.media_type.value}" if request.media_type is not None else ""
    kind = "disk" if request.volume_type is VolumeType.DEVICE else "mount point"
    return f"free{media} {kind} of at least {format_bytes(request.size_bytes)} for {request.label}"


def fit_exclusive(demand: PodDemand, cap: NodeCapacity, held: Held | None, charges: list[Charge]) -> str | None:
    """Add a charge per exclusive volume of ``demand`` to ``charges``, or say why they cannot all have
    a disk (without the reason prefix) on this node next to the disks ``held`` for other pods."""
    if not demand.exclusive:
        return None
    disks = [d for d in cap.free_disks if held is None or d.name not in held.disks]
    matched = match_disks(demand.exclusive, disks)
    if isinstance(matched, int):
        request = demand.exclusive[matched]
        without_held = match_disks(demand.exclusive, cap.free_disks)
        note = HELD_NOTE if not isinstance(without_held, int) else ""
        count = len(demand.exclusive)
        together = f" ({count} exclusive volumes in all)" if count > 1 else ""
        return f"no {exclusive_need(request)}{together}{note}"
    charges.extend(Charge(r.key, disk=disks[i].name) for r, i in zip(demand.exclusive, matched, strict=True))
    return None
