import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scheduling_factories import cap, device, held, pvc
from scheduling_strategies import VG_POOL, VOLUME_BYTES, Cluster, clusters, come_and_go, unnamed_demands

from localcsi.core.capacity_table import NO_ROW, CapacityTable
from localcsi.core.scheduling import (
    ACCOUNTING_EXTENT,
    NodeCapacity,
    NodeReport,
    Pin,
    PodDemand,
    VgReport,
    VolumeRequest,
    best_fit,
    node_capacity,
)
from localcsi.core.scheduling_charges import Assignment
from localcsi.core.scheduling_fit import (
    NO_REPORT,
    Fitter,
    _best_fit_rows,
    _same_rows,
    fit,
)
from localcsi.core.sizes import GiB

pytestmark = pytest.mark.unit


def test_all_volumes_of_a_pod_are_counted_together() -> None:
    # open-local #158: each 6 GiB volume fits a 10 GiB node alone, the pair does not
    node = cap(10)
    assert fit(PodDemand((pvc("a", 6),)), node).ok
    both = fit(PodDemand((pvc("a", 6), pvc("b", 6))), node)
    assert not both.ok
    assert both.reason == "localcsi: no VG has room for PVC ns/b (6 GiB) besides PVC ns/a (6 GiB)"


def test_a_fit_says_where_each_volume_goes() -> None:
    result = fit(PodDemand((pvc("a", 2), pvc("b", 3))), cap(50, 4))
    assert result.ok
    assert sorted((c.key, c.vg, c.charge_bytes) for c in result.charges) == [
        ("key-a", "vg0", 2 * GiB),
        ("key-b", "vg1", 3 * GiB),  # best fit: the VG left with the least room
    ]


def test_volumes_are_spread_over_vgs_when_none_holds_them_all() -> None:
    result = fit(PodDemand((pvc("a", 6), pvc("b", 6))), cap(7, 7))
    assert result.ok
    assert {c.vg for c in result.charges} == {"vg0", "vg1"}


def test_a_named_vg_must_hold_all_of_its_volumes() -> None:
    node = cap(10, 50, names=("fast", "slow"))
    assert fit(PodDemand((pvc("a", 6, "fast"), pvc("b", 3, "fast"))), node).ok
    result = fit(PodDemand((pvc("a", 6, "fast"), pvc("b", 6, "fast"))), node)
    assert result.reason == "localcsi: VG fast lacks room for PVC ns/a (6 GiB), PVC ns/b (6 GiB)"


def test_named_volumes_are_placed_before_the_unnamed_ones_look_for_room() -> None:
    node = cap(10, 5, names=("fast", "slow"))
    result = fit(PodDemand((pvc("free", 5), pvc("pinned", 8, "fast"))), node)
    assert result.ok
    assert {c.key: c.vg for c in result.charges} == {"key-pinned": "fast", "key-free": "slow"}


def test_a_named_vg_that_is_missing_or_broken_says_so() -> None:
    missing = fit(PodDemand((pvc("a", 1, "ssd"),)), cap(10))
    assert missing.reason == "localcsi: VG ssd (vgName of PVC ns/a (1 GiB)) is not on this node"
    report = NodeReport("n1", (VgReport("ssd", 10 * GiB, 10 * GiB, "condition DiskFault"),))
    broken = fit(PodDemand((pvc("a", 1, "ssd"),)), node_capacity(report, []))
    assert broken.reason == "localcsi: VG ssd (vgName of PVC ns/a (1 GiB)) is not usable: condition DiskFault"


def test_a_node_without_vgs_or_report() -> None:
    assert fit(PodDemand((pvc("a", 1),)), cap()).reason == "localcsi: this node has no usable LVM volume group"
    assert fit(PodDemand((pvc("a", 1),)), None).reason == NO_REPORT


def test_space_held_for_other_pods_is_not_offered_again() -> None:
    demand = PodDemand((pvc("a", 6),))
    node = cap(10)
    assert fit(demand, node, held(vg0=3)).ok
    refused = fit(demand, node, held(vg0=5))
    assert refused.reason is not None
    assert refused.reason.endswith("while space is held for other pods being scheduled; retry follows")
    # when the node is too small anyway, the hold is not blamed
    assert "held" not in str(fit(PodDemand((pvc("a", 20),)), node, held(vg0=5)).reason)


def test_pins_fail_every_other_node_with_the_volume_named() -> None:
    demand = PodDemand((pvc("new", 1),), (Pin("n1", "PVC ns/old is bound to a volume on node n1"),))
    assert fit(demand, cap(10, node="n1")).ok
    assert fit(demand, cap(10, node="n2")).reason == "localcsi: PVC ns/old is bound to a volume on node n1"
    assert fit(demand, None).reason == "localcsi: PVC ns/old is bound to a volume on node n1"


def test_a_pod_with_only_pins_needs_no_report_on_its_node() -> None:
    demand = PodDemand(pins=(Pin("n1", "bound"),))
    result = fit(demand, None)
    assert result.reason == "localcsi: bound"
    assert fit(demand, cap(0, node="n1")).ok


def test_problems_fail_every_node() -> None:
    demand = PodDemand((pvc("a", 1),), problems=("VolumeSnapshot ns/s is not ready", "class x is invalid"))
    assert fit(demand, cap(100)).reason == "localcsi: VolumeSnapshot ns/s is not ready; class x is invalid"


def test_nodes_with_the_same_outcome_share_one_assignment() -> None:
    fitter = Fitter(PodDemand((pvc("a", 1), pvc("b", 2))))
    first = fitter.fit(cap(10, node="n1"), None)
    second = fitter.fit(cap(20, node="n2"), held(vg0=1))
    assert first is second
    assert not isinstance(first, str)
    assert first.vg_bytes == (("vg0", 3 * GiB),)


@given(
    free=st.lists(st.integers(0, 64), min_size=0, max_size=4),
    held_gib=st.lists(st.integers(0, 16), min_size=4, max_size=4),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    named=st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=5, max_size=5),
)
def test_a_fit_never_promises_more_than_a_vg_has_left(
    free: list[int], held_gib: list[int], sizes: list[int], named: list[int | None]
) -> None:
    node = cap(*free)
    others = held(**{f"vg{i}": held_gib[i] for i in range(len(free)) if held_gib[i]}) if free else None
    requests = tuple(pvc(f"v{i}", size, None if named[i] is None else f"vg{named[i]}") for i, size in enumerate(sizes))
    result = fit(PodDemand(requests), node, others)
    if not result.ok:
        return
    assert sorted(c.key for c in result.charges) == sorted(r.key for r in requests)
    for vg, room in node.vg_free.items():
        taken = sum(c.charge_bytes for c in result.charges if c.vg == vg)
        held_here = others.vg_bytes.get(vg, 0) if others else 0
        assert taken == 0 or taken + held_here <= room
    for request, charge in ((r, next(c for c in result.charges if c.key == r.key)) for r in requests):
        assert request.vg_name in (None, charge.vg)


def test_rounding_leaves_no_room_for_a_byte_too_many() -> None:
    node = cap(1)
    exactly = VolumeRequest("x", "PVC ns/x", GiB)
    over = VolumeRequest("y", "PVC ns/y", GiB - ACCOUNTING_EXTENT + 1)
    assert fit(PodDemand((exactly,)), node).ok
    assert fit(PodDemand((exactly, over)), node).reason is not None


# fit_many (array form) against fit (per node) ------------------------------------------------------


def fit_each(demand: PodDemand, cluster: Cluster) -> dict[str, Assignment | str]:
    """The reference: ``fit`` on each node alone, with a Fitter of its own."""
    fitter = Fitter(demand)
    return {node: fitter.fit(cluster.caps.get(node), cluster.held(node)) for node in cluster.nodes}


def assert_fit_many_is_fit_on_each(demand: PodDemand, cluster: Cluster) -> None:
    expected = fit_each(demand, cluster)
    passed, failed, placed = Fitter(demand).fit_many(
        list(cluster.nodes), cluster.table, cluster.caps, cluster.held_groups, cluster.held
    )
    assert passed == [node for node in cluster.nodes if not isinstance(expected[node], str)]  # in request order
    assert failed == {node: result for node, result in expected.items() if isinstance(result, str)}
    assert set(placed) == set(passed)
    for node in passed:
        wanted = expected[node]
        assert not isinstance(wanted, str)
        assert (placed[node].charges, placed[node].vg_bytes) == (wanted.charges, wanted.vg_bytes), node
        assert placed[node] == wanted, node


@settings(max_examples=200, deadline=None)
@given(cluster=clusters(), demand=unnamed_demands(), changes=st.data())
def test_fit_many_judges_every_node_as_fit_does(cluster: Cluster, demand: PodDemand, changes: st.DataObject) -> None:
    assert_fit_many_is_fit_on_each(demand, cluster)
    # kube-scheduler asks again with the same names after the cluster changed: the table's
    # remembered rows must follow nodes that came and went
    come_and_go(cluster, changes)
    assert_fit_many_is_fit_on_each(demand, cluster)


@settings(max_examples=100, deadline=None)
@given(cluster=clusters(pool=("vg-a",)), demand=unnamed_demands(), changes=st.data())
def test_fit_many_on_a_cluster_with_one_vg_name_judges_as_fit_does(
    cluster: Cluster, demand: PodDemand, changes: st.DataObject
) -> None:
    assert cluster.table.vg_names in ([], ["vg-a"])
    assert_fit_many_is_fit_on_each(demand, cluster)
    come_and_go(cluster, changes)
    assert_fit_many_is_fit_on_each(demand, cluster)


def test_fit_many_on_one_vg_name_passes_an_exact_fit_and_fails_a_byte_less() -> None:
    demand = PodDemand((pvc("a", 2), pvc("b", 1)))
    caps = {"exact": cap(3, node="exact", names=("vg-a",)), "short": cap(3, node="short", names=("vg-a",))}
    caps["short"] = node_capacity(NodeReport("short", (VgReport("vg-a", 100 * GiB, 3 * GiB - 1),)), [])
    table = CapacityTable()
    for capacity in caps.values():
        table.set(capacity)
    passed, failed, placed = Fitter(demand).fit_many(["short", "exact"], table, caps, [], lambda _: None)
    assert passed == ["exact"] and list(failed) == ["short"]
    assert placed["exact"].vg_bytes == (("vg-a", 3 * GiB),)
    held_group = ((("vg-a", 1),), ["exact"])  # a byte held for another pod leaves the exact fit short
    one_byte = held(**{"vg-a": 1e-9})
    passed, _, _ = Fitter(demand).fit_many(["short", "exact"], table, caps, [held_group], lambda _: one_byte)
    assert passed == []


def test_fit_many_on_one_vg_name_refuses_a_demand_beyond_any_room_without_overflowing() -> None:
    table, caps = CapacityTable(), {"n1": cap(10, names=("vg-a",))}
    table.set(caps["n1"])
    huge = PodDemand(tuple(VolumeRequest(f"key-{i}", f"PVC ns/v{i}", (1 << 63) - 1) for i in range(2)))
    passed, failed, placed = Fitter(huge).fit_many(["n1"], table, caps, [], lambda _: None)
    assert (passed, placed) == ([], {}) and failed["n1"].startswith("localcsi: no VG has room")


@st.composite
def fallback_demands(draw: st.DrawFn, nodes: list[str]) -> PodDemand:
    """Demands fit_many leaves to fit: a vgName, a pin, a problem, an exclusive volume, or nothing."""
    kind = draw(st.sampled_from(["named", "pinned", "named and pinned", "problem", "device", "pin only"]))
    sizes = [] if kind == "pin only" else draw(st.lists(VOLUME_BYTES, min_size=1, max_size=4))
    requests = [VolumeRequest(f"key-{i}", f"PVC ns/v{i}", size) for i, size in enumerate(sizes)]
    if "named" in kind:
        vg = draw(st.sampled_from((*VG_POOL, "vg-missing")))
        requests.append(VolumeRequest("key-named", "PVC ns/named", draw(VOLUME_BYTES), vg_name=vg))
    if kind == "device":
        requests.append(device("disk", 10))
    pins: tuple[Pin, ...] = ()
    if "pin" in kind:
        pins = (Pin(draw(st.sampled_from([*nodes, "n99"])), "PVC ns/old is bound to a volume on its node"),)
    problems = ("VolumeSnapshot ns/s is not ready",) if kind == "problem" else ()
    return PodDemand(tuple(requests), pins, problems)


@settings(max_examples=40, deadline=None)
@given(cluster=clusters(), data=st.data())
def test_fit_many_leaves_other_demands_to_fit(cluster: Cluster, data: st.DataObject) -> None:
    demand = data.draw(fallback_demands(cluster.nodes))
    assert_fit_many_is_fit_on_each(demand, cluster)


def test_fit_many_on_no_nodes_or_a_table_without_vgs() -> None:
    demand = PodDemand((pvc("a", 1),))
    assert Fitter(demand).fit_many([], CapacityTable(), {}, [], lambda _: None) == ([], {}, {})
    table = CapacityTable()
    caps = {"n1": cap(node="n1")}
    table.set(caps["n1"])
    passed, failed, _ = Fitter(demand).fit_many(["n1", "n2"], table, caps, [], lambda _: None)
    assert passed == []
    assert failed == {"n1": "localcsi: this node has no usable LVM volume group", "n2": NO_REPORT}


def test_fit_many_groups_nodes_by_choice_even_over_many_vgs() -> None:
    # 64 VGs and 11 volumes: too many combinations to number choices in one int64, so the grouping
    # takes its other way; each node's two small VGs are where best fit puts the volumes
    names = tuple(f"vg-{i:02d}" for i in range(64))
    caps: dict[str, NodeCapacity] = {}
    for k in range(6):
        free = [100.0] * 64
        free[50 + k], free[56 + k] = 6, 5
        caps[f"n{k}"] = cap(*free, node=f"n{k}", names=names)
    caps["same"] = cap(*([100.0] * 64), node="same", names=names)
    caps["also-same"] = cap(*([100.0] * 64), node="also-same", names=names)
    table = CapacityTable()
    for capacity in caps.values():
        table.set(capacity)
    demand = PodDemand(tuple(pvc(f"v{i:02d}", 1) for i in range(11)))
    cluster = Cluster(caps, table, {}, list(caps), [])
    assert_fit_many_is_fit_on_each(demand, cluster)
    _, _, placed = Fitter(demand).fit_many(cluster.nodes, table, caps, [], cluster.held)
    assert dict(placed["n3"].vg_bytes) == {"vg-53": 6 * GiB, "vg-59": 5 * GiB}
    assert placed["same"] is placed["also-same"]
    assert len({id(a) for a in placed.values()}) == 7


@settings(max_examples=100, deadline=None)
@given(
    choice=st.tuples(st.integers(1, 30), st.integers(1, 12), st.sampled_from([0, 1, 2, 5, 63, 5000])).flatmap(
        lambda shape: arrays(np.int64, shape[:2], elements=st.integers(0, shape[2]))
    )
)
def test_same_rows_groups_equal_rows_and_only_those(choice: npt.NDArray[np.int64]) -> None:
    # up to 12 columns of up to 5000: past what numbering rows in one int64 can hold, so both ways
    groups = _same_rows(choice)
    members = sorted(i for _, indexes in groups for i in indexes.tolist())
    assert members == list(range(len(choice)))  # every row in exactly one group
    assert len({tuple(row) for row, _ in groups}) == len(groups)  # no row in two groups
    for row, indexes in groups:
        assert len(indexes) > 0
        for i in indexes.tolist():
            assert choice[i].tolist() == row


@settings(max_examples=100, deadline=None)
@given(
    rooms=st.lists(
        st.fixed_dictionaries({}, optional={vg: st.integers(-1, 12) for vg in VG_POOL}), min_size=1, max_size=8
    ),
    charges=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(lambda c: sorted(c, reverse=True)),  # largest first
)
def test_best_fit_rows_is_best_fit_on_each_row(rooms: list[dict[str, int]], charges: list[int]) -> None:
    # small whole numbers of GiB: many ties, exact fits and volumes split over VGs
    table = CapacityTable()
    table.set(cap(1, 1, 1, node="all", names=VG_POOL))  # every column exists (as fit_many makes sure)
    caps = [cap(*room.values(), node=f"n{i}", names=tuple(room)) for i, room in enumerate(rooms)]
    for capacity in caps:
        table.set(capacity)
    charged = [gib * GiB for gib in charges]
    rows = table.rows_of([c.node for c in caps])
    fits, choice = _best_fit_rows(table.room(rows, []), rows != NO_ROW, charged)
    for i, capacity in enumerate(caps):
        room = dict(capacity.vg_free)
        each = [best_fit(room, charge) for charge in charged]
        expected = None if None in each else each
        assert bool(fits[i]) == (expected is not None), capacity.vg_free
        if expected is not None:
            assert [table.vg_names[column] for column in choice[i].tolist()] == expected, capacity.vg_free
