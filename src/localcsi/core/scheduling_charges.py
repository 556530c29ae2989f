"""What a pod would take on a node, and what is held for pods being scheduled.

A ``Charge`` is one volume's share (bytes of a VG, or a whole disk); an ``Assignment`` is all of a
pod's charges on one node; ``Held`` sums the assignments the reservation ledger keeps on a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

HELD_NOTE = " while space is held for other pods being scheduled; retry follows"


@dataclass(frozen=True)
class Charge:
    """What one volume of a reservation takes on one node: bytes of a VG, or a whole disk."""

    key: str
    vg: str | None = None
    charge_bytes: int = 0
    disk: str | None = None


@dataclass(frozen=True)
class Assignment:
    """Where each of a pod's volumes would go on one node; nodes with the same outcome share one."""

    charges: tuple[Charge, ...]
    vg_bytes: tuple[tuple[str, int], ...]  # per VG, summed
    disks: tuple[str, ...]
    total_bytes: int


def assignment(charges: Sequence[Charge]) -> Assignment:
    per_vg: dict[str, int] = {}
    for charge in charges:
        if charge.disk is None and charge.vg is not None:
            per_vg[charge.vg] = per_vg.get(charge.vg, 0) + charge.charge_bytes
    disks = tuple(c.disk for c in charges if c.disk is not None)
    return Assignment(tuple(charges), tuple(sorted(per_vg.items())), disks, sum(per_vg.values()))


@dataclass(slots=True)
class Held:
    """Space held on one node for pods being scheduled: the reservation ledger's total for it."""

    vg_bytes: dict[str, int] = field(default_factory=dict)
    disks: set[str] = field(default_factory=set)
    total_bytes: int = 0

    def add(self, held: Assignment) -> None:
        vg_bytes = self.vg_bytes
        for vg, amount in held.vg_bytes:
            vg_bytes[vg] = vg_bytes.get(vg, 0) + amount
        if held.disks:
            self.disks.update(held.disks)
        self.total_bytes += held.total_bytes

    def merge(self, other: Held) -> None:
        for vg, amount in other.vg_bytes.items():
            self.vg_bytes[vg] = self.vg_bytes.get(vg, 0) + amount
        self.disks |= other.disks
        self.total_bytes += other.total_bytes

    def remove(self, held: Assignment) -> None:
        vg_bytes = self.vg_bytes
        for vg, amount in held.vg_bytes:
            left = vg_bytes.get(vg, 0) - amount
            if left > 0:
                vg_bytes[vg] = left
            else:
                vg_bytes.pop(vg, None)
        if held.disks:
            self.disks.difference_update(held.disks)
        self.total_bytes -= held.total_bytes

    @property
    def empty(self) -> bool:
        return not self.vg_bytes and not self.disks
