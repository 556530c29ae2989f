"""The usages every source (a PV, a PVC, a LogicalVolume, a scheduled pod's inline volumes) puts on
each node, indexed by volume key.

One volume is usually seen through several sources at once (its PVC's selected-node, then its
LogicalVolume, then its PV), and counts once: as the best of them, a placed usage (VG or disk known)
over an unplaced one, then the larger. The index says which volume's counted usage a change of one
source moved, so the view can patch that node's capacity instead of going over all its volumes.
"""

from __future__ import annotations

from localcsi.core.scheduling import Usage

# (node, the volume's counted usage before, after): None where it had none / has none
Change = tuple[str, Usage | None, Usage | None]


def _rank(usage: Usage) -> tuple[bool, int, int]:
    return usage.vg is not None or usage.disk is not None, usage.charge_bytes, usage.size_bytes


def _best(by_source: dict[str, Usage]) -> Usage | None:
    best: Usage | None = None
    for usage in by_source.values():
        if best is None or _rank(usage) > _rank(best):
            best = usage
    return best


class NodeUsages:
    def __init__(self) -> None:
        self._by_node: dict[str, dict[str, dict[str, Usage]]] = {}  # node -> key -> source -> usage

    def usages(self, node: str) -> list[Usage]:
        """One usage per volume on the node: the one it counts as."""
        return [usage for by_source in self._by_node.get(node, {}).values() if (usage := _best(by_source))]

    def replace(
        self, source: str, old: tuple[str, tuple[Usage, ...]] | None, new: tuple[str, tuple[Usage, ...]] | None
    ) -> list[Change]:
        """``source`` puts ``new`` (node, usages) where it put ``old``; the counted usages that moved."""
        touched = {(entry[0], usage.key) for entry in (old, new) if entry is not None for usage in entry[1]}
        before = {(node, key): self._counted(node, key) for node, key in touched}
        if old is not None:
            node, usages = old
            keyed = self._by_node[node]
            for usage in usages:
                by_source = keyed.get(usage.key)  # gone already where the source named one key twice
                if by_source is not None:
                    by_source.pop(source, None)
                    if not by_source:
                        del keyed[usage.key]
            if not keyed:
                del self._by_node[node]
        if new is not None:
            node, usages = new
            keyed = self._by_node.setdefault(node, {})
            for usage in usages:
                by_source = keyed.setdefault(usage.key, {})
                named = by_source.get(source)  # the best of one key named twice, as between sources
                if named is None or _rank(usage) > _rank(named):
                    by_source[source] = usage
        changes = []
        for node, key in sorted(touched):
            after = self._counted(node, key)
            if after != before[(node, key)]:
                changes.append((node, before[(node, key)], after))
        return changes

    def _counted(self, node: str, key: str) -> Usage | None:
        by_source = self._by_node.get(node, {}).get(key)
        return _best(by_source) if by_source else None
