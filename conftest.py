"""Tiers follow folders: tests/unit -> unit, tests/node -> node, sanity/ -> sanity, tests/cluster ->
cluster, tests/e2e -> e2e.

The `vm` tox env (not what CI runs: docs/testing.md) runs node, sanity, cluster and e2e in one xdist
session on two workers (`--dist loadgroup`, scheduled by `TierGroups` below): the whole e2e tier is one
group, the whole cluster tier another (one control plane), and every other test module its own (its VM
is a module fixture). Groups go in this order: e2e, the longest chain, then csi-sanity and cluster, the
next longest, then node modules in collection order; so one worker runs the e2e tier from its first test
while the other takes the rest, and neither is left with a long group at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

pytest_plugins = ["localcsi.testing.fixtures", "localcsi.testing.cluster_fixtures", "localcsi.testing.e2e_fixtures"]

TIER_BY_FOLDER = {"unit": "unit", "node": "node", "cluster": "cluster", "e2e": "e2e"}


E2E_GROUP = "e2e"
CLUSTER_GROUP = "cluster"


class TierGroups(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
    """xdist scheduling by groups: the e2e tier is one, the cluster tier one, every other test module its
    own. (xdist's own `xdist_group` marks do not group under pytest 9: they rename `item._nodeid`, which
    pytest 9 no longer reads, so each test was scheduled alone and both workers started an e2e
    environment.)"""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path.startswith("tests/e2e/"):
            return E2E_GROUP
        return CLUSTER_GROUP if path.startswith("tests/cluster/") else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> TierGroups | None:
    return TierGroups(config, log) if config.getvalue("dist") == "loadgroup" else None


# Longest chains first (see above): the e2e tier, then csi-sanity and the cluster tier, then the rest.
TIER_ORDER = {"e2e": 0, "sanity": 1, "cluster": 2}


def _run_order(item: pytest.Item) -> tuple[int, bool]:
    rank = min((rank for tier, rank in TIER_ORDER.items() if item.get_closest_marker(tier)), default=len(TIER_ORDER))
    return rank, item.get_closest_marker("last") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        tier = "sanity" if parts[0] == "sanity" else TIER_BY_FOLDER.get(parts[1] if len(parts) > 1 else "")
        if tier is not None and not any(item.iter_markers(name=tier)):
            item.add_marker(getattr(pytest.mark, tier))
    # Tiers in TIER_ORDER (the longest chains first, see above). Within a tier, a test that leaves the
    # node changed (rebooted into cgroup v1) goes after every other one, so that restoring the node is
    # needed only when something follows (sorted() keeps the order otherwise).
    items[:] = sorted(items, key=_run_order)


# What a process that runs anything but e2e tests yields to one that runs them (nice(2)), from its first
# such test on: in the `vm` env the other worker's VMs, control plane and csi-sanity then take only what
# the e2e tier's real node leaves. At the same priority the real node got about one core, which its
# kubelet, containerd and pods need just to idle, and its tests ran 2 to 6 times slower (session 12).
YIELD_TO_E2E = 10


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("e2e") is None and os.getpriority(os.PRIO_PROCESS, 0) < YIELD_TO_E2E:
        os.nice(YIELD_TO_E2E - os.getpriority(os.PRIO_PROCESS, 0))
