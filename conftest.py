"""Tiers follow folders: tests/unit -> unit, tests/node and sanity/ -> node, tests/cluster -> cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["localcsi.testing.fixtures", "localcsi.testing.cluster_fixtures", "localcsi.testing.e2e_fixtures"]

TIER_BY_FOLDER = {"unit": "unit", "node": "node", "cluster": "cluster", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        tier = "node" if parts[0] == "sanity" else TIER_BY_FOLDER.get(parts[1] if len(parts) > 1 else "")
        if tier is not None and not any(item.iter_markers(name=tier)):
            item.add_marker(getattr(pytest.mark, tier))
    # A test that leaves the node changed (rebooted into cgroup v1) goes after every other one, so that
    # restoring the node is needed only when something follows (sorted() keeps the order otherwise).
    items[:] = sorted(items, key=lambda item: any(item.iter_markers(name="last")))
