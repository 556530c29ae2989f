import copy
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from extender_objects import Obj, nls, pod, pvc, storage_class

from localcsi.core.scheduling import PodDemand, Strategy
from localcsi.core.sizes import GiB
from localcsi.extender import service
from localcsi.extender.cache import NODE_LOCAL_STORAGES, PERSISTENT_VOLUME_CLAIMS, PODS, STORAGE_CLASSES
from localcsi.extender.demand import ClusterLookup, pod_demand
from localcsi.extender.objects import SELECTED_NODE_ANNOTATION
from localcsi.extender.service import Extender

pytestmark = pytest.mark.unit

NODES = [f"n{i}" for i in range(10)]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def cluster(free_gib: float = 20, strategy: Strategy = Strategy.BINPACK, clock: Clock | None = None) -> Extender:
    extender = Extender(strategy, ttl_seconds=30, clock=clock or Clock())
    extender.apply(STORAGE_CLASSES, "ADDED", storage_class())
    for node in NODES:
        extender.apply(NODE_LOCAL_STORAGES, "ADDED", nls(node, ("vg0", free_gib)))
    return extender


def add_pod(extender: Extender, name: str, *sizes: str) -> tuple[Obj, list[Obj]]:
    claims = [pvc(f"{name}-{i}", size) for i, size in enumerate(sizes)]
    for claim in claims:
        extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", claim)
    return pod(name, *(c["metadata"]["name"] for c in claims)), claims


def commit(extender: Extender, claims: list[Obj], node: str) -> None:
    """What kube-scheduler's binding cycle does: selected-node on every PVC of the pod. Each claim is
    replaced in ``claims`` by a new object, as an informer delivers one per event."""
    for index, old in enumerate(claims):
        claims[index] = new = copy.deepcopy(old)
        new["metadata"].setdefault("annotations", {})[SELECTED_NODE_ANNOTATION] = node
        extender.apply(PERSISTENT_VOLUME_CLAIMS, "MODIFIED", new)


def committed_bytes(claims: list[Obj]) -> dict[str, int]:
    per_node: dict[str, int] = {}
    for claim in claims:
        node = claim["metadata"].get("annotations", {}).get(SELECTED_NODE_ANNOTATION)
        if node:
            size = int(claim["spec"]["resources"]["requests"]["storage"].removesuffix("Gi")) * GiB
            per_node[node] = per_node.get(node, 0) + size
    return per_node


def schedule(extender: Extender, the_pod: Obj, claims: list[Obj], rng: random.Random) -> str | None:
    """One scheduling attempt: filter, prioritize, pick the best, then commit after a while."""
    outcome = extender.filter(the_pod, NODES)
    if not outcome.passed:
        return None
    threading.Event().wait(rng.random() / 500)  # other pods get filtered meanwhile
    scores = extender.prioritize(the_pod, outcome.passed).scores()
    best = max(scores.values())
    node = rng.choice([n for n, score in scores.items() if score == best])
    threading.Event().wait(rng.random() / 500)
    commit(extender, claims, node)
    return node


@pytest.mark.parametrize("sizes", [("10Gi",), ("4Gi", "6Gi"), ("2Gi", "3Gi", "5Gi")])
def test_thirty_pods_racing_for_room_for_twenty_never_over_commit(sizes: tuple[str, ...]) -> None:
    extender = cluster(free_gib=20)
    pods = [add_pod(extender, f"p{i}", *sizes) for i in range(30)]
    rng = random.Random(5)  # noqa: S311 - only the scheduler's choices, seeded
    placed: dict[str, str] = {}
    for _ in range(30):  # the scheduler retries unschedulable pods until nothing changes
        waiting = [(p, c) for p, c in pods if p["metadata"]["name"] not in placed]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda pc: schedule(extender, pc[0], pc[1], rng), waiting))
        for (the_pod, _), node in zip(waiting, results, strict=True):
            if node is not None:
                placed[the_pod["metadata"]["name"]] = node
        if all(node is None for node in results):
            break
    all_claims = [claim for _, claims in pods for claim in claims]
    assert max(committed_bytes(all_claims).values()) <= 20 * GiB
    # holds only ever delay a pod: once they are committed every bit of room is used
    assert len(placed) == 20
    left = next(p for p, _ in pods if p["metadata"]["name"] not in placed)
    outcome = extender.filter(left, NODES)
    assert outcome.passed == []
    assert all(reason.startswith("localcsi: no VG has room for PVC") for reason in outcome.failed.values())


def test_pods_filtered_before_any_commit_do_not_share_the_same_space() -> None:
    extender = cluster(free_gib=10)
    first, _ = add_pod(extender, "first", "10Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    assert extender.filter(first, NODES).passed == NODES
    outcome = extender.filter(second, NODES)
    assert outcome.passed == []
    assert outcome.failed["n0"].endswith("while space is held for other pods being scheduled; retry follows")


def test_a_pod_that_fits_is_logged_at_debug_and_one_that_fits_nowhere_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    extender = cluster(free_gib=10)
    fits, _ = add_pod(extender, "fits", "5Gi")
    too_big, _ = add_pod(extender, "too-big", "50Gi")
    with caplog.at_level(logging.INFO, logger=service.__name__):
        extender.filter(fits, NODES)
        assert caplog.records == []  # the shipped level (info) pays nothing per pod that fits
        extender.filter(too_big, NODES)
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, "filter: no node fits")]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=service.__name__):
        extender.filter(fits, NODES)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.DEBUG, "filter: 10 of 10 nodes fit")]


def test_a_claim_with_an_overlong_uid_is_judged_not_a_server_error() -> None:
    """Found by fuzzing: its volume key raised inside filter, which the server turned into a 500."""
    extender = cluster(free_gib=10)
    claim = pvc("odd-0", "5Gi", uid="u" * 200)
    extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", claim)
    assert extender.filter(pod("odd", "odd-0"), NODES).passed == NODES


def test_once_a_pod_is_committed_its_other_holds_are_released() -> None:
    extender = cluster(free_gib=10)
    first, claims = add_pod(extender, "first", "10Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    extender.filter(first, NODES)
    commit(extender, claims, "n3")
    outcome = extender.filter(second, NODES)
    assert outcome.passed == [n for n in NODES if n != "n3"]


def test_prioritize_narrows_holds_to_the_nodes_still_in_the_running() -> None:
    extender = cluster(free_gib=10)
    first, _ = add_pod(extender, "first", "10Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    extender.filter(first, NODES)
    extender.prioritize(first, ["n1", "n2"])
    assert extender.filter(second, NODES).passed == [n for n in NODES if n not in ("n1", "n2")]


def test_a_deleted_pending_pod_releases_its_holds() -> None:
    extender = cluster(free_gib=10)
    first, _ = add_pod(extender, "first", "10Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    extender.filter(first, NODES)
    extender.apply(PODS, "DELETED", first)
    assert extender.filter(second, NODES).passed == NODES


def test_holds_of_a_pod_the_scheduler_gave_up_on_expire() -> None:
    clock = Clock()
    extender = cluster(free_gib=10, clock=clock)
    first, _ = add_pod(extender, "first", "10Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    extender.filter(first, NODES)
    clock.now += 31
    assert extender.filter(second, NODES).passed == NODES
    summary = extender.ready_summary()
    assert (summary["reservations_made"], summary["reservations_expired"], summary["reserved_pods"]) == (2, 1, 1)


def test_a_restarted_extender_rebuilds_commitments_from_the_pvcs() -> None:
    before = cluster(free_gib=10)
    placed, claims = add_pod(before, "placed", "10Gi")
    before.filter(placed, NODES)
    commit(before, claims, "n0")
    # the new process knows nothing but what the informers list
    after = cluster(free_gib=10)
    for claim in claims:
        after.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", claim)
    newcomer, _ = add_pod(after, "new", "10Gi")
    assert "n0" not in after.filter(newcomer, NODES).passed


def test_pods_without_our_volumes_pass_everywhere_untouched() -> None:
    extender = cluster(free_gib=0)
    outcome = extender.filter(pod("plain"), [*NODES, "no-report"])
    assert (outcome.passed, outcome.failed, outcome.counted) == ([*NODES, "no-report"], {}, False)
    assert extender.prioritize(pod("plain"), NODES).scores() == {n: 0 for n in NODES}


def test_a_missing_storage_class_never_blocks_the_pod_or_others() -> None:
    extender = cluster(free_gib=0)
    lost = pvc("lost", storage_class_name="does-not-exist")
    extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", lost)
    assert extender.filter(pod("p", "lost"), NODES).passed == NODES
    assert extender.ready_summary()["reserved_pods"] == 0


def test_binpack_and_spread_rank_nodes_oppositely() -> None:
    for strategy, expected in ((Strategy.BINPACK, "n0"), (Strategy.SPREAD, "n1")):
        extender = cluster(free_gib=50, strategy=strategy)
        extender.apply(NODE_LOCAL_STORAGES, "MODIFIED", nls("n0", ("vg0", 20)))
        the_pod, _ = add_pod(extender, "p", "10Gi")
        outcome = extender.filter(the_pod, ["n0", "n1"])
        scores = extender.prioritize(the_pod, outcome.passed).scores()
        assert max(scores, key=lambda n: scores[n]) == expected
        assert all(0 <= s <= 10 for s in scores.values())


# prioritize answered from what filter worked out ---------------------------------------------------


def count_demands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pods whose demand the service works out (``pod_demand`` calls), by name."""
    calls: list[str] = []

    def counting(the_pod: Obj, lookup: ClusterLookup) -> tuple[PodDemand, list[str]]:
        calls.append(the_pod["metadata"]["name"])
        return pod_demand(the_pod, lookup)

    monkeypatch.setattr(service, "pod_demand", counting)
    return calls


def test_prioritize_right_after_filter_reuses_its_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    extender = cluster(free_gib=20)
    the_pod, _ = add_pod(extender, "p", "5Gi")
    calls = count_demands(monkeypatch)
    outcome = extender.filter(the_pod, NODES)
    # kube-scheduler's prioritize carries the pod decoded anew, and the nodes that passed
    assert extender.prioritize(copy.deepcopy(the_pod), list(outcome.passed)).scores() == {n: 8 for n in NODES}
    assert calls == ["p"]


def test_prioritize_keeps_filters_demand_through_events_about_other_pods_and_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extender = cluster(free_gib=20)
    the_pod, _ = add_pod(extender, "p", "5Gi")
    other, other_claims = add_pod(extender, "q", "1Gi")
    calls = count_demands(monkeypatch)
    outcome = extender.filter(the_pod, NODES)
    # a busy cluster between the two calls: another pod's claim committed, a node's report, a pod event
    commit(extender, other_claims, NODES[0])
    extender.apply(NODE_LOCAL_STORAGES, "MODIFIED", nls(NODES[1], ("vg0", 19)))
    extender.apply(PODS, "ADDED", other)
    scores = extender.prioritize(the_pod, outcome.passed).scores()
    assert calls == ["p"]
    # n0: 80 GiB used, q's 1 GiB committed there, and p's 5: 86 GiB; n1: 81 + 5 (8); the rest 85 (8)
    assert scores == {n: 8 for n in NODES}


def test_prioritize_after_a_cache_change_does_not_use_the_stale_filter_result() -> None:
    extender = cluster(free_gib=20)
    the_pod, claims = add_pod(extender, "p", "5Gi")
    outcome = extender.filter(the_pod, NODES)
    edited = copy.deepcopy(claims[0])  # a new object, as the informer delivers each event
    edited["spec"]["resources"]["requests"]["storage"] = "15Gi"  # e.g. an edited claim, before it is bound
    extender.apply(PERSISTENT_VOLUME_CLAIMS, "MODIFIED", edited)
    # 80 of 100 GiB used, and the claim: 95 GiB (9), not 85 (8)
    assert extender.prioritize(the_pod, outcome.passed).scores() == {n: 9 for n in NODES}


def test_prioritize_after_a_resync_does_not_use_the_stale_filter_result() -> None:
    extender = cluster(free_gib=20)
    the_pod, _ = add_pod(extender, "p", "5Gi")
    outcome = extender.filter(the_pod, NODES)
    storage_classes = {"local": storage_class(), "other": storage_class("other", provisioner="elsewhere")}
    storage_classes["local"]["provisioner"] = "someone-else"  # a watch event was missed: local is not ours
    extender.resync(STORAGE_CLASSES, lambda: storage_classes)
    assert extender.prioritize(the_pod, outcome.passed).scores() == {n: 0 for n in NODES}


def test_prioritize_after_another_pods_filter_works_its_demand_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    extender = cluster(free_gib=20)
    first, _ = add_pod(extender, "first", "5Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    calls = count_demands(monkeypatch)
    outcome = extender.filter(first, NODES)
    extender.filter(second, NODES)  # concurrent scheduling: the memo is the last filtered pod's
    scores = extender.prioritize(first, outcome.passed).scores()
    assert calls == ["first", "second", "first"]
    assert scores == {n: 9 for n in NODES}  # 80 of 100 GiB used, the second pod's 10 held, and 5: 95 GiB


def test_prioritize_after_a_change_to_the_holds_works_the_holds_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    extender = cluster(free_gib=20)
    the_pod, _ = add_pod(extender, "p", "5Gi")
    calls = count_demands(monkeypatch)
    outcome = extender.filter(the_pod, NODES)
    extender.prioritize(the_pod, outcome.passed[:5])  # releases its holds on the other five
    scores = extender.prioritize(the_pod, outcome.passed).scores()
    assert calls == ["p"]  # the demand still holds: nothing it read changed
    assert scores == {n: 8 for n in NODES}  # the second prioritize did not take filter's word for the holds
    assert set(extender.ledger.pod_nodes(the_pod["metadata"]["uid"])) == set(NODES[:5])


def test_prioritize_for_a_recreated_pod_of_the_same_name_works_its_demand_out(monkeypatch: pytest.MonkeyPatch) -> None:
    extender = cluster(free_gib=20)
    old, _ = add_pod(extender, "p", "5Gi")
    calls = count_demands(monkeypatch)
    outcome = extender.filter(old, NODES)
    new = copy.deepcopy(old)
    new["metadata"]["uid"] = "uid-p-again"  # a StatefulSet's pod, deleted and made again
    extender.prioritize(new, outcome.passed)
    assert calls == ["p", "p"]


def test_prioritize_on_fewer_nodes_than_passed_still_releases_the_rest() -> None:
    extender = cluster(free_gib=10)
    first, _ = add_pod(extender, "first", "10Gi")
    second, _ = add_pod(extender, "second", "10Gi")
    outcome = extender.filter(first, NODES)
    extender.prioritize(first, outcome.passed[:2])
    assert extender.filter(second, NODES).passed == NODES[2:]


class LiveClaims:
    """The apiserver's PVCs, for the extender's live reads; `error` makes every read fail."""

    def __init__(self, *claims: Obj, error: str | None = None) -> None:
        self.claims = {f"{c['metadata'].get('namespace', 'default')}/{c['metadata']['name']}": c for c in claims}
        self.error = error
        self.reads: list[str] = []

    def __call__(self, namespace: str, name: str) -> Obj | None:
        self.reads.append(f"{namespace}/{name}")
        if self.error is not None:
            raise service.ClaimFetchError(self.error)
        return copy.deepcopy(self.claims.get(f"{namespace}/{name}"))


def lagging_cluster(live: LiveClaims, free_gib: float) -> Extender:
    extender = cluster(free_gib=free_gib)
    extender.fetch_claim = live
    return extender


def test_a_claim_the_informer_has_not_delivered_is_read_live_and_counted() -> None:
    """Without the read, `late` was not counted and both pods were promised the same 10 GiB."""
    live = LiveClaims(pvc("late-0", "10Gi"))
    extender = lagging_cluster(live, free_gib=10)
    first, _ = add_pod(extender, "first", "10Gi")
    assert extender.filter(first, NODES).passed == NODES
    outcome = extender.filter(pod("late", "late-0"), NODES)
    assert outcome.passed == [] and outcome.counted
    assert live.reads == ["default/late-0"]
    assert extender.ready_summary()["claims_read_live"] == 1
    extender.filter(pod("late", "late-0"), NODES)  # now in the view: no second read
    assert live.reads == ["default/late-0"]


def test_claims_the_view_holds_are_never_read_live() -> None:
    live = LiveClaims()
    extender = lagging_cluster(live, free_gib=10)
    first, _ = add_pod(extender, "first", "5Gi", "3Gi")
    assert extender.filter(first, NODES).passed == NODES
    assert live.reads == []


def test_a_claim_the_apiserver_does_not_have_is_left_out_as_before() -> None:
    live = LiveClaims()
    extender = lagging_cluster(live, free_gib=0)
    outcome = extender.filter(pod("gone", "gone-0"), NODES)
    assert (outcome.passed, outcome.counted) == (NODES, False)
    assert live.reads == ["default/gone-0"]
    assert extender.ready_summary()["claims_read_live"] == 0


def test_a_failed_live_read_fails_every_node_with_its_reason_and_holds_nothing() -> None:
    live = LiveClaims(error="503 ServiceUnavailable: etcd leader changed")
    extender = lagging_cluster(live, free_gib=100)
    outcome = extender.filter(pod("p", "unseen-0"), NODES)
    assert outcome.passed == [] and set(outcome.failed) == set(NODES)
    assert "PVC default/unseen-0 is not in the extender's cache yet and reading it failed: 503" in outcome.failed["n0"]
    assert extender.ready_summary()["reserved_pods"] == 0
