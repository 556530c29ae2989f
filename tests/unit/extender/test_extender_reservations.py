import pytest

from localcsi.core.scheduling_fit import Assignment, Charge, assignment
from localcsi.core.sizes import GiB
from localcsi.extender.reservations import ReservationLedger

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
