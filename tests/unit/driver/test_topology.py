"""Topology requirements: which nodes a volume may go to."""

from __future__ import annotations

import pytest

from localcsi import TOPOLOGY_KEY
from localcsi.core.errors import ResourceExhausted
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
