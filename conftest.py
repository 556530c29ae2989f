"""Tiers follow folders: tests/unit -> unit, tests/node and sanity/ -> node, tests/cluster -> cluster,
tests/e2e -> e2e.

The `vm` tox env runs node and e2e in one xdist session on two workers (`--dist loadgroup`): every
node module is its own group (its VM is a module fixture), and all e2e tests are one group, so one
worker runs the e2e tier from its first test while the other takes node modules. The e2e group goes
first because it is the longest chain; node modules follow in collection order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["localcsi.testing.fixtures", "localcsi.testing.cluster_fixtures", "localcsi.testing.e2e_fixtures"]

TIER_BY_FOLDER = {"unit": "unit", "node": "node", "cluster": "cluster", "e2e": "e2e"}


E2E_GROUP = "e2e"


def _run_order(item: pytest.Item) -> tuple[bool, bool]:
    return item.get_closest_marker("e2e") is None, item.get_closest_marker("last") is not None


# tryfirst: xdist's own hook turns the xdist_group marks added here into the groups it schedules by.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    for item in items:
        relative = Path(item.path).relative_to(root)
        parts = relative.parts
        tier = "node" if parts[0] == "sanity" else TIER_BY_FOLDER.get(parts[1] if len(parts) > 1 else "")
        if tier is not None and not any(item.iter_markers(name=tier)):
            item.add_marker(getattr(pytest.mark, tier))
        if tier == "e2e":
            item.add_marker(pytest.mark.xdist_group(E2E_GROUP))
        elif tier == "node":
            item.add_marker(pytest.mark.xdist_group(relative.as_posix()))
    # e2e first (the longest chain, see above). Within a tier, a test that leaves the node changed
    # (rebooted into cgroup v1) goes after every other one, so that restoring the node is needed only
    # when something follows (sorted() keeps the order otherwise).
    items[:] = sorted(items, key=_run_order)
