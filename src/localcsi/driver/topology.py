"""Accessibility: which nodes a volume may be created on, and where a volume is reachable from.

A local volume is reachable from exactly one node, ``{topology.localcsi.io/node: <node>}``. Other
keys in a requested topology are not ours to judge and are ignored; a topology without our key
names no node of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localcsi import TOPOLOGY_KEY
from localcsi.core.errors import ResourceExhausted

Segments = Mapping[str, str]


@dataclass(frozen=True)
class TopologyRequirement:
    requisite: tuple[Segments, ...] = ()
    preferred: tuple[Segments, ...] = ()


def node_topology(node: str) -> dict[str, str]:
    return {TOPOLOGY_KEY: node}


def topology_node(segments: Segments) -> str | None:
    return segments.get(TOPOLOGY_KEY)


def candidate_nodes(nodes: Sequence[str], requirement: TopologyRequirement | None) -> list[str]:
    """``nodes`` allowed by the requisite topologies, preferred ones first.

    RESOURCE_EXHAUSTED when the requisite topologies exclude every node: the CSI spec's code for
    "unable to provision in accessible_topology".
    """
    if requirement is None:
        return list(nodes)
    allowed = list(nodes)
    if requirement.requisite:
        wanted = {topology_node(t) for t in requirement.requisite}
        allowed = [node for node in nodes if node in wanted]
        if not allowed:
            named = sorted(str(t.get(TOPOLOGY_KEY, dict(t))) for t in requirement.requisite)
            raise ResourceExhausted(
                f"the requisite topology {named} includes none of this driver's nodes "
                f"({', '.join(nodes)}); a local volume can only be created on one of them"
            )
    order = [topology_node(t) for t in requirement.preferred]
    ranked = [node for node in order if node in allowed]
    return list(dict.fromkeys([*ranked, *allowed]))
