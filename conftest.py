"""Tiers follow folders: tests/unit -> unit, tests/node -> node, sanity/ -> sanity, tests/cluster ->
cluster, tests/e2e -> e2e.

The `vm` tox env runs node and e2e in one xdist session on two workers (`--dist loadgroup`, scheduled
by `TierGroups` below): every node module is its own group (its VM is a module fixture) and the whole
e2e tier is one group, so one worker runs the e2e tier from its first test while the other takes node
modules. The e2e group goes first because it is the longest chain; node modules follow in collection
order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

pytest_plugins = ["localcsi.testing.fixtures", "localcsi.testing.cluster_fixtures", "localcsi.testing.e2e_fixtures"]

TIER_BY_FOLDER = {"unit": "unit", "node": "node", "cluster": "cluster", "e2e": "e2e"}


E2E_GROUP = "e2e"


class TierGroups(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
    """xdist scheduling by groups: the e2e tier is one, every other test module its own. (xdist's own
    `xdist_group` marks do not group under pytest 9: they rename `item._nodeid`, which pytest 9 no longer
    reads, so each test was scheduled alone and both workers started an e2e environment.)"""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return E2E_GROUP if path.startswith("tests/e2e/") else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> TierGroups | None:
    return TierGroups(config, log) if config.getvalue("dist") == "loadgroup" else None


def _run_order(item: pytest.Item) -> tuple[bool, bool]:
    return item.get_closest_marker("e2e") is None, item.get_closest_marker("last") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        tier = "sanity" if parts[0] == "sanity" else TIER_BY_FOLDER.get(parts[1] if len(parts) > 1 else "")
        if tier is not None and not any(item.iter_markers(name=tier)):
            item.add_marker(getattr(pytest.mark, tier))
    # e2e first (the longest chain, see above). Within a tier, a test that leaves the node changed
    # (rebooted into cgroup v1) goes after every other one, so that restoring the node is needed only
    # when something follows (sorted() keeps the order otherwise).
    items[:] = sorted(items, key=_run_order)
