"""Committed volumes whose VG is not chosen yet, on a node with one VG: all of them count against it,
whether they fit or not, as the best-fit walk over them would count them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.scheduling import NodeReport, Usage, VgReport, node_capacity

pytestmark = pytest.mark.unit
GIB = 1 << 30


@given(free_gib=st.integers(0, 50), charges_gib=st.lists(st.integers(1, 20), max_size=12))
def test_one_vg_loses_every_unplaced_charge(free_gib: int, charges_gib: list[int]) -> None:
    report = NodeReport("n1", (VgReport("vg0", 100 * GIB, free_gib * GIB),))
    usages = [Usage(f"lv-{index}", charge * GIB) for index, charge in enumerate(charges_gib)]
    cap = node_capacity(report, usages)
    assert cap.vg_free == {"vg0": (free_gib - sum(charges_gib)) * GIB}
    assert cap.free_bytes == (free_gib - sum(charges_gib)) * GIB


def test_two_vgs_still_take_the_best_fit_largest_first() -> None:
    report = NodeReport("n1", (VgReport("a", 100 * GIB, 10 * GIB), VgReport("b", 100 * GIB, 7 * GIB)))
    cap = node_capacity(report, [Usage("small", 3 * GIB), Usage("big", 7 * GIB)])
    assert cap.vg_free == {"a": 7 * GIB, "b": 0}  # big first, into b (nothing left), then small into a
