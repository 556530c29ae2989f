"""Tiers follow folders: tests/unit -> unit, tests/node -> node, sanity/ -> sanity, tests/cluster ->
cluster, tests/e2e -> e2e.

xdist runs the node tier (and the `vm` tox env, not what CI runs: docs/testing.md) with `--dist
loadgroup`, scheduled by `TierGroups` below in groups (`testing/scheduling.py`): the whole e2e tier is
one, the whole cluster tier another (one control plane), each csi-sanity run and every other test
module its own (its VM is a module fixture). Groups go longest first, by what their tests took in
earlier runs on this machine (the record is written at the end of every run); with no record, in tier
order: e2e, then csi-sanity and cluster, then node modules in collection order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from localcsi.testing.scheduling import group_of, load_record, longest_first, record_path, save_record

pytest_plugins = ["localcsi.testing.fixtures", "localcsi.testing.cluster_fixtures", "localcsi.testing.e2e_fixtures"]

TIER_BY_FOLDER = {"unit": "unit", "node": "node", "cluster": "cluster", "e2e": "e2e"}


class TierGroups(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no types
    """xdist scheduling by `scheduling.group_of`, in collection order (which pytest_collection_modifyitems
    made longest first). (xdist's own `xdist_group` marks do not group under pytest 9: they rename
    `item._nodeid`, which pytest 9 no longer reads, so each test was scheduled alone and both workers
    started an e2e environment.)"""

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> TierGroups | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    config.option.loadscopereorder = False  # xdist's default reorders groups by test count
    return TierGroups(config, log)


# The order with no duration record (see above): the e2e tier, then csi-sanity and the cluster tier,
# then the rest.
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
    # Tiers in TIER_ORDER, then groups longest first by the record (see above). Within a tier, a test that
    # leaves the node changed (rebooted into cgroup v1) goes after every other one, so that restoring the
    # node is needed only when something follows (the sorts keep the order otherwise).
    items[:] = longest_first(sorted(items, key=_run_order), lambda item: item.nodeid, load_record(record_path()))


class DurationRecorder:
    """Each test's seconds (setup, call and teardown) in this run, merged into the record at the end. In
    the process that sees every report: xdist's controller, or pytest itself without xdist."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith("tests/unit/"):
            self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        if self.seconds:
            save_record(record_path(), self.seconds)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(), "localcsi-duration-recorder")


# What a process that runs anything but e2e tests yields to one that runs them (nice(2)), from its first
# such test on: in the `vm` env the other worker's VMs, control plane and csi-sanity then take only what
# the e2e tier's real node leaves. At the same priority the real node got about one core, which its
# kubelet, containerd and pods need just to idle, and its tests ran 2 to 6 times slower (session 12).
YIELD_TO_E2E = 10


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("e2e") is None and os.getpriority(os.PRIO_PROCESS, 0) < YIELD_TO_E2E:
        os.nice(YIELD_TO_E2E - os.getpriority(os.PRIO_PROCESS, 0))
