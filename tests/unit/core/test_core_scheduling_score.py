import pytest
from scheduling_factories import cap, device, disk, disk_cap, held, pvc

from localcsi.core.scheduling import NodeReport, Pin, PodDemand, Strategy, VgReport, node_capacity
from localcsi.core.scheduling_score import MAX_SCORE, Scorer, score
from localcsi.core.sizes import GiB

pytestmark = pytest.mark.unit


def test_binpack_prefers_the_fuller_node_and_spread_the_emptier() -> None:
    demand = PodDemand((pvc("a", 10),))
    full, empty = cap(20), cap(90)
    assert score(demand, full, None, Strategy.BINPACK, already_held=False) == 9  # 80 + 10 of 100 used
    assert score(demand, empty, None, Strategy.BINPACK, already_held=False) == 2
    assert score(demand, full, None, Strategy.SPREAD, already_held=False) == 1
    assert score(demand, empty, None, Strategy.SPREAD, already_held=False) == 8


def test_a_pods_own_hold_is_not_counted_twice_in_its_score() -> None:
    demand = PodDemand((pvc("a", 10),))
    node = cap(50)
    own = held(vg0=10)
    assert score(demand, node, own, Strategy.BINPACK, already_held=True) == 6
    assert score(demand, node, own, Strategy.BINPACK, already_held=False) == 7


def test_scores_stay_within_zero_and_ten() -> None:
    scorer = Scorer(PodDemand((pvc("a", 500),)), Strategy.BINPACK)
    assert scorer.score(cap(10), 90 * GiB, set(), already_held=False) == MAX_SCORE
    assert Scorer(PodDemand((pvc("a", 500),)), Strategy.SPREAD).score(cap(10), 0, set(), already_held=False) == 0
    over = node_capacity(NodeReport("n1", (VgReport("vg0", 10 * GiB, 50 * GiB),)), [])
    assert 0 <= scorer.score(over, 0, set(), already_held=True) <= MAX_SCORE


def test_pods_with_nothing_to_place_score_zero_everywhere() -> None:
    pinned = PodDemand(pins=(Pin("n1", "bound"),))
    assert score(pinned, cap(10), None, Strategy.BINPACK, already_held=False) == 0
    assert score(PodDemand((pvc("a", 1),)), None, None, Strategy.SPREAD, already_held=False) == 0


def test_device_scores_count_disks() -> None:
    node = disk_cap(*(disk(f"/dev/sd{c}", 100) for c in "bcde"))
    demand = PodDemand((device("a", 10),))
    assert score(demand, node, None, Strategy.BINPACK, already_held=False) == 2  # 1 of 4 after placing
    assert score(demand, node, None, Strategy.SPREAD, already_held=False) == 8
