"""Topology requirements and the per-volume operation locks."""

from __future__ import annotations

import threading

import pytest

from localcsi import TOPOLOGY_KEY
from localcsi.core.errors import Aborted, ResourceExhausted
from localcsi.driver.locks import VolumeLocks
from localcsi.driver.topology import TopologyRequirement, candidate_nodes, node_topology

pytestmark = pytest.mark.unit

NODES = ("n1", "n2", "n3")


def at(node: str, **other: str) -> dict[str, str]:
    return {TOPOLOGY_KEY: node, **other}


def test_no_requirement_allows_every_node() -> None:
    assert candidate_nodes(NODES, None) == list(NODES)
    assert candidate_nodes(NODES, TopologyRequirement()) == list(NODES)


def test_requisite_filters_and_preferred_orders() -> None:
    requirement = TopologyRequirement(requisite=(at("n3"), at("n2")), preferred=(at("n3"),))
    assert candidate_nodes(NODES, requirement) == ["n3", "n2"]
    assert candidate_nodes(NODES, TopologyRequirement(preferred=(at("n2"), at("n9")))) == ["n2", "n1", "n3"]
    assert candidate_nodes(NODES, TopologyRequirement(requisite=(at("n1", zone="z"),))) == ["n1"]


def test_requisite_without_any_of_our_nodes_is_resource_exhausted() -> None:
    for requisite in ((at("n9"),), ({"kubernetes.io/hostname": "n1"},)):
        with pytest.raises(ResourceExhausted, match="none of this driver's nodes"):
            candidate_nodes(NODES, TopologyRequirement(requisite=requisite))


def test_node_topology_uses_the_driver_key() -> None:
    assert node_topology("n1") == {"topology.localcsi.io/node": "n1"}


def test_exclusive_holds_conflict_with_everything() -> None:
    locks = VolumeLocks()
    with locks.hold(exclusive=["a"]):
        for attempt in ({"exclusive": ["a"]}, {"shared": ["a"]}, {"exclusive": ["b", "a"]}):
            with pytest.raises(Aborted, match="'a'"), locks.hold(**attempt):
                pass
        assert not locks.busy("b"), "a refused hold must not keep any of its keys"
    assert not locks.busy("a")


def test_shared_holds_stack_and_block_exclusive_ones() -> None:
    locks = VolumeLocks()
    with locks.hold(shared=["src"]), locks.hold(exclusive=["dst1"], shared=["src"]):
        with pytest.raises(Aborted), locks.hold(exclusive=["src"]):
            pass
        assert locks.busy("src")
    assert not locks.busy("src") and not locks.busy("dst1")
    with locks.hold(exclusive=["src"]):
        pass


def test_locks_are_thread_safe() -> None:
    locks = VolumeLocks()
    outcomes: list[str] = []
    start = threading.Barrier(8)
    all_tried = threading.Event()

    def contend() -> None:
        start.wait()
        try:
            with locks.hold(exclusive=["k"]):
                outcomes.append("held")
                all_tried.wait(timeout=10)  # keep holding until every other caller has tried
        except Aborted:
            outcomes.append("aborted")
            if outcomes.count("aborted") == 7:
                all_tried.set()

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["aborted"] * 7 + ["held"], "exactly one concurrent caller may hold a key"
