import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduling_factories import cap, device, disk, disk_cap, held, pvc
from scheduling_strategies import VG_POOL, VOLUME_BYTES, Cluster, clusters, come_and_go

from localcsi.core.capacity_table import CapacityTable
from localcsi.core.scheduling import NodeReport, Pin, PodDemand, Strategy, VgReport, VolumeRequest, node_capacity
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


# rank (array form) against score (per node) --------------------------------------------------------


@st.composite
def lvm_demands(draw: st.DrawFn) -> PodDemand:
    """1 to 4 LVM volumes, some naming a VG; or only a pin (nothing to place: everything scores 0)."""
    count = draw(st.sampled_from(range(5)))  # drawn apart, uniformly: lists alone are mostly short
    volumes = draw(
        st.lists(st.tuples(VOLUME_BYTES, st.sampled_from((None, None, *VG_POOL))), min_size=count, max_size=count)
    )
    if not volumes:
        return PodDemand(pins=(Pin("n00", "bound"),))
    return PodDemand(
        tuple(VolumeRequest(f"key-{i}", f"PVC ns/v{i}", b, vg_name=vg) for i, (b, vg) in enumerate(volumes))
    )


def assert_rank_is_score_on_each(
    demand: PodDemand, strategy: Strategy, cluster: Cluster, held_bytes: dict[str, int], own: set[str]
) -> None:
    nodes = list(cluster.nodes)
    held = [((("some-vg", amount),), [node]) for node, amount in held_bytes.items()]
    ranks = Scorer(demand, strategy).rank(nodes, cluster.table, held, own)
    assert len(ranks) == MAX_SCORE + 1
    assert sorted(node for rank in ranks for node in rank) == sorted(nodes)  # each node once
    for rank in ranks:
        assert rank == [node for node in nodes if node in set(rank)]  # in request order
    scored = {node: value for value, rank in enumerate(ranks) for node in rank}
    scorer = Scorer(demand, strategy)
    for node in nodes:
        capacity = cluster.caps.get(node)
        assert scored[node] == scorer.score(capacity, held_bytes.get(node, 0), set(), node in own), node


@settings(max_examples=150, deadline=None)
@given(cluster=clusters(), demand=lvm_demands(), strategy=st.sampled_from(Strategy), data=st.data())
def test_rank_scores_every_node_as_score_does(
    cluster: Cluster, demand: PodDemand, strategy: Strategy, data: st.DataObject
) -> None:
    held_bytes = cluster.held_bytes
    # a bit per node: whether what is held there includes this pod's own hold
    mask = data.draw(st.integers(0, (1 << len(cluster.nodes)) - 1))
    own = {node for i, node in enumerate(cluster.nodes) if mask >> i & 1}
    assert_rank_is_score_on_each(demand, strategy, cluster, held_bytes, own)
    # the same names again after nodes came and went: the table's remembered rows must follow
    come_and_go(cluster, data)
    assert_rank_is_score_on_each(demand, strategy, cluster, held_bytes, own)


def test_rank_gives_a_node_without_a_report_zero_as_score_does() -> None:
    # A node without a report normally fails filter and never reaches prioritize; if it does (its
    # report went in between), neither strategy prefers it.
    demand = PodDemand((pvc("a", 1),))
    table = CapacityTable()
    table.set(cap(50, node="known"))
    binpack, spread = Scorer(demand, Strategy.BINPACK), Scorer(demand, Strategy.SPREAD)
    assert binpack.rank(["gone", "known"], table, [((("vg0", GiB),), ["gone"])], {"gone"})[0] == ["gone"]
    assert spread.rank(["gone", "known"], table, [], ())[0] == ["gone"]
    assert spread.rank(["gone", "known"], table, [], ())[5] == ["known"]  # 51 of 100 GiB used
    assert binpack.score(None, 0, set(), already_held=False) == 0
    assert spread.score(None, 0, set(), already_held=False) == 0


@pytest.mark.parametrize("strategy", list(Strategy))
def test_rank_on_a_table_that_never_had_a_node(strategy: Strategy) -> None:
    # before the first NodeLocalStorage report (the table has no rows yet) every node is one
    # without a report, as in a table that has some
    ranks = Scorer(PodDemand((pvc("a", 1),)), strategy).rank(
        ["n1", "n2"], CapacityTable(), [((("vg0", GiB),), ["n1"])], {"n2"}
    )
    assert ranks[0] == ["n1", "n2"]


def test_rank_leaves_pods_with_nothing_to_place_at_zero() -> None:
    table = CapacityTable()
    table.set(cap(50, node="n1"))
    ranks = Scorer(PodDemand(pins=(Pin("n1", "bound"),)), Strategy.SPREAD).rank(["n2", "n1"], table, [], ())
    assert ranks[0] == ["n2", "n1"] and not any(ranks[1:])
    assert Scorer(PodDemand((pvc("a", 1),)), Strategy.BINPACK).rank([], table, [], ()) == [[]] * (MAX_SCORE + 1)
