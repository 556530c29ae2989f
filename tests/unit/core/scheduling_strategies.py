"""Random clusters for the scheduling core's property tests: a CapacityTable and the NodeCapacity
it was built from, built over time the way the extender's view builds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

from hypothesis import strategies as st

from localcsi.core.capacity_table import CapacityTable, HeldGroups
from localcsi.core.scheduling import (
    ACCOUNTING_EXTENT,
    NodeCapacity,
    NodeReport,
    PodDemand,
    VgReport,
    VolumeRequest,
    node_capacity,
)
from localcsi.core.scheduling_charges import Charge, Held, assignment
from localcsi.core.sizes import GiB

VG_POOL = ("vg-a", "vg-b", "vg-c")
# GiB multiples make ties between VGs and exact fits likely, a byte or an extent off them the nearest
# misses; the rest covers huge and over-committed (negative) room. (sampled_from draws uniformly,
# where integers() mostly gives the smallest values.)
FREE_BYTES = st.one_of(
    st.tuples(
        st.sampled_from(range(-2, 41)), st.sampled_from([0, 0, 0, 1, -1, ACCOUNTING_EXTENT, -ACCOUNTING_EXTENT])
    ).map(lambda near: near[0] * GiB + near[1]),
    st.integers(-(1 << 40), 1 << 50),
)
VOLUME_BYTES = st.one_of(
    st.sampled_from(range(1, 9)).map(lambda gib: gib * GiB),
    st.integers(1, 16 * GiB),
    st.sampled_from([1, ACCOUNTING_EXTENT, ACCOUNTING_EXTENT + 1]),
)


@dataclass
class Cluster:
    """The cluster view as filter sees it: a table and caps that agree, the holds, and the request."""

    caps: dict[str, NodeCapacity]
    table: CapacityTable
    helds: dict[str, Held]
    nodes: list[str]  # the request's node names, in kube-scheduler's order
    late: list[NodeCapacity]  # reports that arrive after a first request, for the nodes named late-*

    @property
    def held_bytes(self) -> dict[str, int]:
        return {node: h.total_bytes for node, h in self.helds.items()}

    @property
    def held_groups(self) -> HeldGroups:
        """The holds as the ledger gives them to fit_many: here one group per node."""
        return [(tuple(h.vg_bytes.items()), [node]) for node, h in self.helds.items()]

    def held(self, node: str) -> Held | None:
        return self.helds.get(node)

    def report(self, capacity: NodeCapacity) -> None:
        self.caps[capacity.node] = capacity
        self.table.set(capacity)

    def forget(self, node: str) -> None:
        self.caps.pop(node, None)
        self.table.drop(node)


def vg_reports(pool: tuple[str, ...]) -> st.SearchStrategy[list[VgReport]]:
    """Each VG of ``pool`` or not (half of them each), about one in five with a problem (so no room,
    and no column)."""
    problems = st.sampled_from([None, None, None, None, "condition DiskFault"])
    size = st.integers(0, 64).map(lambda gib: gib * GiB)
    maybe = [st.builds(VgReport, st.just(name), size, FREE_BYTES, problems) | st.none() for name in pool]
    return st.tuples(*maybe).map(lambda vgs: [vg for vg in vgs if vg is not None])


VGS = vg_reports(VG_POOL)
GHOST_VGS = vg_reports((*VG_POOL, "vg-0", "vg-z"))  # names only gone nodes had: columns left empty


def node_cap(node: str, vgs: list[VgReport]) -> NodeCapacity:
    return node_capacity(NodeReport(node, tuple(vgs)), [])


def holding(charges: list[tuple[str, int]]) -> Held:
    total = Held()
    total.add(assignment([Charge(f"other-{vg}", vg, amount) for vg, amount in charges]))
    return total


# what other pods hold on a node: bytes on 1 to 3 VGs, maybe one the node does not have
HOLDS = st.lists(
    st.tuples(st.sampled_from((*VG_POOL, "vg-elsewhere")), VOLUME_BYTES),
    unique_by=lambda charge: charge[0],
    min_size=1,
    max_size=3,
).map(holding)


def pick(choices: tuple[Sequence[int], ...], index: int) -> tuple[int, ...]:
    """Element ``index`` of the product of ``choices``, without making the product."""
    picked = []
    for options in reversed(choices):
        index, at = divmod(index, len(options))
        picked.append(options[at])
    return tuple(reversed(picked))


@st.composite
def clusters(draw: st.DrawFn, pool: tuple[str, ...] = VG_POOL) -> Cluster:
    """A cluster whose nodes have VGs of ``pool``; gone nodes had those and two more names, unless
    ``pool`` is a single VG (a table of one column: fit_many's own path)."""
    # Nodes come in a few kinds (VG layouts and room), as real clusters do: drawing each node's VGs
    # anew would make most of the test's time Hypothesis's. Sizes are drawn apart, uniformly: lists
    # alone are mostly short.
    vgs, ghost_vgs = (VGS, GHOST_VGS) if pool == VG_POOL else (vg_reports(pool), vg_reports(pool))
    kinds = draw(st.lists(vgs, min_size=(many := draw(st.sampled_from(range(1, 7)))), max_size=many))
    held_kinds = [*draw(st.lists(HOLDS, max_size=3)), None]
    count = draw(st.sampled_from(range(41)))
    # each node: its kind (-1: no report), the kind of an older report the table had first (-1: none),
    # what other pods hold on it (-1: nothing), and whether the request names it
    kind = st.sampled_from(range(len(kinds)))
    choices = (
        [*range(len(kinds))] * 4 + [-1],
        [-1] * 2 * len(kinds) + [*range(len(kinds))],
        range(-1, len(held_kinds)),
        [True, True, True, False],
    )
    specs = [
        pick(choices, i)
        for i in draw(st.lists(st.integers(0, prod(map(len, choices)) - 1), min_size=count, max_size=count))
    ]
    ghosts = [node_cap(f"ghost-{i}", vgs) for i, vgs in enumerate(draw(st.lists(ghost_vgs, max_size=4)))]
    late_kinds = draw(st.lists(kind, min_size=(many := draw(st.sampled_from(range(4)))), max_size=many))
    late = [node_cap(f"late-{i}", kinds[k]) for i, k in enumerate(late_kinds)]
    order = draw(st.randoms(use_true_random=True))  # for the orders only: one draw, not one per node
    names = [f"n{i:02d}" for i in range(count)]
    caps = {node: node_cap(node, kinds[k]) for node, (k, *_) in zip(names, specs, strict=True) if k >= 0}
    # Build the table the way the view does over time: nodes come in any order, some are reported
    # twice, and some go (their rows, and VG names only they had, stay behind for the next ones).
    table = CapacityTable()
    for ghost in order.sample(ghosts, len(ghosts)):
        table.set(ghost)
    for ghost in ghosts:
        table.drop(ghost.node)
    for node in order.sample(list(caps), len(caps)):
        stale = specs[names.index(node)][1]
        table.set(caps[node] if stale < 0 else node_cap(node, kinds[stale]))
    for capacity in caps.values():  # then the current reports
        table.set(capacity)
    helds = {node: held_kinds[h] for node, (_, _, h, _) in zip(names, specs, strict=True) if h >= 0}
    unknown = [f"n{i:02d}" for i in range(count, count + 3)] + [c.node for c in ghosts + late]
    for node, hold in zip(order.sample(unknown, len(unknown)), held_kinds, strict=False):
        if hold is not None:
            helds[node] = hold
    nodes = [node for node, (*_, requested) in zip(names, specs, strict=True) if requested] + unknown
    order.shuffle(nodes)
    return Cluster(caps, table, {node: hold for node, hold in helds.items() if hold is not None}, nodes, late)


@st.composite
def unnamed_demands(draw: st.DrawFn) -> PodDemand:
    count = draw(st.sampled_from([1, 2, 3, 4]))  # drawn apart, uniformly: lists alone are mostly short
    sizes = draw(st.lists(VOLUME_BYTES, min_size=count, max_size=count))
    return PodDemand(tuple(VolumeRequest(f"key-{i}", f"PVC ns/v{i}", size) for i, size in enumerate(sizes)))


def come_and_go(cluster: Cluster, data: st.DataObject) -> None:
    """Up to 3 of the request's reported nodes go, then the late nodes report, taking the rows just
    freed: rows remembered from before would show the new nodes' room under the old names."""
    requested = [node for node in cluster.nodes if node in cluster.caps]
    many = min(data.draw(st.sampled_from(range(4))), len(requested))
    for node in (
        data.draw(st.lists(st.sampled_from(requested), unique=True, min_size=many, max_size=many)) if many else ()
    ):
        cluster.forget(node)
    for capacity in cluster.late:
        cluster.report(capacity)
