import pytest

from localcsi.core.scheduling_charges import Charge, Held, assignment
from localcsi.core.sizes import GiB

pytestmark = pytest.mark.unit


def test_an_assignment_sums_bytes_per_vg_and_lists_its_disks() -> None:
    placed = assignment([Charge("a", "vg1", GiB), Charge("b", "vg0", 2 * GiB), Charge("c", "vg1", GiB)])
    assert placed.vg_bytes == (("vg0", 2 * GiB), ("vg1", 2 * GiB))
    assert (placed.disks, placed.total_bytes) == ((), 4 * GiB)
    whole = assignment([Charge("d", disk="/dev/sdb"), Charge("e", "vg0", GiB)])
    assert (whole.vg_bytes, whole.disks, whole.total_bytes) == ((("vg0", GiB),), ("/dev/sdb",), GiB)


def test_held_totals_follow_adds_and_removes() -> None:
    total = Held()
    one = assignment([Charge("a", "vg0", GiB), Charge("b", "vg1", 2 * GiB), Charge("c", disk="/dev/sdb")])
    two = assignment([Charge("d", "vg0", 3 * GiB)])
    total.add(one)
    total.add(two)
    assert (total.vg_bytes, total.disks, total.total_bytes) == ({"vg0": 4 * GiB, "vg1": 2 * GiB}, {"/dev/sdb"}, 6 * GiB)
    total.remove(one)
    assert (total.vg_bytes, total.disks, total.total_bytes) == ({"vg0": 3 * GiB}, set(), 3 * GiB)
    total.remove(two)
    assert total.empty


def test_merging_helds_adds_bytes_and_disks() -> None:
    first, second = Held(), Held()
    first.add(assignment([Charge("a", "vg0", GiB), Charge("b", disk="/dev/sdb")]))
    second.add(assignment([Charge("c", "vg0", 2 * GiB), Charge("d", "vg1", GiB), Charge("e", disk="/dev/sdc")]))
    first.merge(second)
    assert first.vg_bytes == {"vg0": 3 * GiB, "vg1": GiB}
    assert (first.disks, first.total_bytes) == ({"/dev/sdb", "/dev/sdc"}, 4 * GiB)
