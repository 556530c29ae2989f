import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from localcsi.core.capacity_table import HeldGroups
from localcsi.core.scheduling_charges import Assignment, Charge, assignment
from localcsi.core.sizes import GiB
from localcsi.extender.reservations import ReservationLedger, _one_object

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def two_volumes(vg: str = "vg0") -> Assignment:
    return assignment([Charge("lv-a", vg, GiB), Charge("lv-b", vg, 2 * GiB)])


def held_bytes(ledger: ReservationLedger, node: str) -> int:
    held = ledger.held(node)
    return held.total_bytes if held else 0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> ReservationLedger:
    return ReservationLedger(clock, ttl_seconds=30)


def test_a_pod_holds_its_demand_on_every_node_it_passed(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": two_volumes(), "n2": two_volumes()})
    ledger.reserve("pod-2", "ns/p2", {"n2": assignment([Charge("lv-c", "vg0", 5 * GiB)])})
    assert held_bytes(ledger, "n1") == 3 * GiB
    assert held_bytes(ledger, "n2") == 8 * GiB
    assert ledger.holds("pod-1", "n2") and not ledger.holds("pod-2", "n1")
    assert (ledger.pod_count, ledger.hold_count) == (2, 3)


def test_filtering_a_pod_again_replaces_its_holds(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": two_volumes(), "n2": two_volumes()})
    ledger.reserve("pod-1", "ns/p1", {"n3": two_volumes()})
    assert ledger.held("n1") is None and ledger.held("n2") is None
    assert held_bytes(ledger, "n3") == 3 * GiB


def test_releasing_a_pod_frees_everything_it_held(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": two_volumes(), "n2": two_volumes()})
    assert ledger.release_pod("pod-1")
    assert not ledger.release_pod("pod-1")
    assert ledger.held("n1") is None and ledger.pod_count == 0
    # its volumes are forgotten too: committing one later touches nothing
    assert ledger.commit("lv-a", "n1") == []


def test_prioritize_narrows_holds_to_the_nodes_still_in_the_running(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {f"n{i}": two_volumes() for i in range(5)})
    assert ledger.keep_only("pod-1", ["n1", "n3"]) == 3
    assert set(ledger.pod_nodes("pod-1")) == {"n1", "n3"}
    assert ledger.held("n0") is None
    assert ledger.keep_only("pod-1", []) == 2
    assert ledger.pod_count == 0


def test_a_committed_volume_stops_being_held_and_the_pod_keeps_only_its_node(
    ledger: ReservationLedger, clock: Clock
) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": two_volumes(), "n2": two_volumes(), "n3": two_volumes()})
    assert ledger.commit("lv-a", "n2") == ["pod-1"]
    # lv-a is counted by the cluster view from now on; lv-b stays held, on n2 only
    assert set(ledger.pod_nodes("pod-1")) == {"n2"}
    assert held_bytes(ledger, "n2") == 2 * GiB
    assert ledger.held("n1") is None and ledger.held("n3") is None
    # committed holds have no deadline: provisioning may take long
    clock.now += 3600
    assert ledger.expire() == []
    assert ledger.commit("lv-b", "n2") == ["pod-1"]
    assert ledger.pod_count == 0 and ledger.held("n2") is None


def test_uncommitted_holds_expire_after_the_ttl(ledger: ReservationLedger, clock: Clock) -> None:
    ledger.reserve("old", "ns/old", {"n1": two_volumes()})
    clock.now += 20
    ledger.reserve("new", "ns/new", {"n1": assignment([Charge("lv-c", "vg0", GiB)])})
    clock.now += 10
    assert ledger.expire() == ["ns/old"]
    assert held_bytes(ledger, "n1") == GiB
    clock.now += 19
    assert ledger.expire() == []
    clock.now += 1
    assert ledger.expire() == ["ns/new"]
    assert ledger.held("n1") is None


def test_a_deleted_node_holds_nothing(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": two_volumes(), "n2": two_volumes()})
    ledger.reserve("pod-2", "ns/p2", {"n1": assignment([Charge("lv-c", "vg0", GiB)])})
    ledger.drop_node("n1")
    assert ledger.held("n1") is None
    assert set(ledger.pod_nodes("pod-1")) == {"n2"}
    assert ledger.pod_count == 1


def test_disks_are_held_and_released(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": assignment([Charge("dev-a", disk="/dev/sdb")])})
    held = ledger.held("n1")
    assert held is not None and held.disks == {"/dev/sdb"}
    ledger.release_pod("pod-1")
    assert ledger.held("n1") is None


def test_nothing_to_hold_records_nothing(ledger: ReservationLedger) -> None:
    ledger.reserve("pod-1", "ns/p1", {"n1": assignment([])})
    assert ledger.pod_count == 0 and ledger.held("n1") is None


# held_groups (cached per change) against held (summed when asked) ---------------------------------

UIDS = ("pod-1", "pod-2", "pod-3", "pod-4")
NODES = ("n1", "n2", "n3", "n4", "n5")
KEYS = ("lv-a", "lv-b", "lv-c", "lv-d")  # pods may share a volume


def group_totals(groups: HeldGroups) -> dict[str, int]:
    """Each node's bytes over every group that names it, where there are any."""
    out: dict[str, int] = {}
    for vg_bytes, nodes in groups:
        for node in nodes:
            out[node] = out.get(node, 0) + sum(amount for _, amount in vg_bytes)
    return {node: amount for node, amount in out.items() if amount}


def totals(ledger: ReservationLedger) -> dict[str, int]:
    """The reference: each node's bytes from ``held``, where there are any."""
    held = {node: ledger.held(node) for node in NODES}
    return {node: h.total_bytes for node, h in held.items() if h is not None and h.total_bytes}


# a pod's volumes: each its key, and GiB (0: a whole disk)
VOLUMES = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(0, 4)), unique_by=lambda v: v[0], min_size=1, max_size=3
)
# the nodes a pod passed: on each, a bit per volume choosing its VG there
LAYOUTS = st.dictionaries(st.sampled_from(NODES), st.integers(0, 7), min_size=1, max_size=len(NODES))


class LedgerMachine(RuleBasedStateMachine):
    """filter, prioritize and the informers in any order, reading held_groups between every two."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.ledger = ReservationLedger(self.clock, ttl_seconds=30)
        self.seen: tuple[int, object] | None = None  # (generation, state) at the last step

    @initialize(pods=st.lists(st.tuples(st.sampled_from(UIDS), VOLUMES, LAYOUTS), max_size=3))
    def filtered(self, pods: list[tuple[str, list[tuple[str, int]], dict[str, int]]]) -> None:
        """Start with some pods held (the rules release more often than they reserve)."""
        for uid, volumes, layouts in pods:
            self.reserve(uid, volumes, layouts)

    @rule(uid=st.sampled_from(UIDS), volumes=VOLUMES, layouts=LAYOUTS)
    def reserve(self, uid: str, volumes: list[tuple[str, int]], layouts: dict[str, int]) -> None:
        # as filter produces it: every node holds the same volumes, the same bytes, VGs may differ,
        # and nodes that took the same VGs share one Assignment
        made: dict[int, Assignment] = {}
        for layout in layouts.values():
            made.setdefault(
                layout,
                assignment(
                    [
                        Charge(key, ("vg0", "vg1")[layout >> i & 1], gib * GiB)
                        if gib
                        else Charge(key, disk=f"/dev/{key}")
                        for i, (key, gib) in enumerate(volumes)
                    ]
                ),
            )
        self.ledger.reserve(uid, f"ns/{uid}", {node: made[layout] for node, layout in layouts.items()})

    @rule(uid=st.sampled_from(UIDS))
    def release_pod(self, uid: str) -> None:
        self.ledger.release_pod(uid)

    @rule(uid=st.sampled_from(UIDS), nodes=st.lists(st.sampled_from(NODES), unique=True))
    def keep_only(self, uid: str, nodes: list[str]) -> None:
        self.ledger.keep_only(uid, nodes)

    @rule(key=st.sampled_from(KEYS), node=st.sampled_from(NODES))
    def commit(self, key: str, node: str) -> None:
        self.ledger.commit(key, node)

    @rule(uid=st.sampled_from(UIDS), data=st.data())
    def commit_where_held(self, uid: str, data: st.DataObject) -> None:
        """The usual commit: one of the pod's volumes, on one of the nodes it holds."""
        held = self.ledger.pod_nodes(uid)
        if held:
            self.commit(data.draw(st.sampled_from(KEYS)), data.draw(st.sampled_from(sorted(held))))

    @rule(node=st.sampled_from(NODES))
    def drop_node(self, node: str) -> None:
        self.ledger.drop_node(node)

    @rule(seconds=st.sampled_from([0, 1, 5, 10, 29, 30, 31]))
    def expire(self, seconds: float) -> None:
        self.clock.now += seconds
        self.ledger.expire()

    @invariant()
    def the_generation_moves_with_every_change(self) -> None:
        """What prioritize reuses from filter stays valid while the generation does (extender.service)."""
        ledger = self.ledger
        state = (
            {uid: (ledger.pod_holds_wide(uid), dict(ledger.pod_nodes(uid))) for uid in UIDS},
            {
                node: (h.total_bytes, dict(h.vg_bytes), set(h.disks)) if (h := ledger.held(node)) else None
                for node in NODES
            },
        )
        if self.seen is not None and self.seen[0] == ledger.generation:
            assert self.seen[1] == state
        self.seen = (ledger.generation, state)

    @invariant()
    def held_groups_besides_a_pod_leave_out_its_wide_hold(self) -> None:
        ledger = self.ledger
        everyone = group_totals(ledger.held_groups())
        assert everyone == totals(ledger)
        for uid in UIDS:
            besides = group_totals(ledger.held_groups(besides=uid))
            if ledger.pod_holds_wide(uid):
                own = ledger.pod_nodes(uid)  # its wide hold: what it would take on each node it passed
                for node, placed in own.items():
                    assert isinstance(placed, Assignment)
                    everyone_else = everyone.get(node, 0) - placed.total_bytes
                    assert besides.pop(node, 0) == everyone_else, (uid, node)
                assert besides == {node: held for node, held in everyone.items() if node not in own}, uid
            else:  # nothing held wide to leave out (a narrow hold of its own still counts)
                assert besides == everyone, uid

    @invariant()
    def held_groups_are_what_held_sums_per_vg(self) -> None:
        ledger = self.ledger
        groups = ledger.held_groups()
        assert ledger.held_groups() is groups  # kept until the next change
        per_node: dict[str, dict[str, int]] = {}
        for vg_bytes, nodes in groups:
            assert len(set(nodes)) == len(nodes)  # a node once per group
            for node in nodes:
                for vg, amount in vg_bytes:
                    per_node.setdefault(node, {})[vg] = per_node.get(node, {}).get(vg, 0) + amount
        for node in NODES:
            held = ledger.held(node)
            expected = {vg: amount for vg, amount in (held.vg_bytes if held else {}).items() if amount}
            assert {vg: amount for vg, amount in per_node.get(node, {}).items() if amount} == expected, node


def test_held_groups_follow_every_change_of_the_ledger() -> None:
    run_state_machine_as_test(LedgerMachine, settings=settings(max_examples=60, stateful_step_count=30, deadline=None))


def test_one_object_is_identity_not_equality() -> None:
    shared = assignment([Charge("a", "vg", 1)])
    assert _one_object([shared, shared, shared])
    assert _one_object({"n1": shared}.values())
    assert not _one_object([])
    # equal but distinct: groups() then groups them by identity, as its slower branch does
    assert not _one_object([shared, assignment([Charge("a", "vg", 1)])])
    assert not _one_object([shared, shared, assignment([Charge("b", "vg", 2)])])
