"""A real Prometheus scrapes localcsi's metrics (synthetic storage, real collectors and HTTP server): every
dashboard panel's PromQL returns series, values match what the agent computed, and the rules load and
an alert goes pending. The e2e tier does the same against the real node (localcsi.testing.prometheus).

Needs the `prometheus` binary (Debian package `prometheus`, installed by hack/install-deps): without it
the test fails and says so."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from localcsi.core.nodestorage import parse_spec
from localcsi.core.nodestorage_status import build_status
from localcsi.extender.metrics import Metrics as ExtenderMetrics
from localcsi.extender.service import Extender
from localcsi.fs.block_devices import IoCounters
from localcsi.metrics.agent import AgentCollector
from localcsi.metrics.commands import CommandMetrics, Outcome
from localcsi.metrics.controller import ControllerMetrics
from localcsi.metrics.http import ObservabilityServer
from localcsi.metrics.io_limits import IoLimitCollector
from localcsi.metrics.volumes import PhaseCollector, VolumeMetrics
from localcsi.plugin.rpc_metrics import RpcMetrics
from localcsi.testing.install import project_root
from localcsi.testing.prometheus import RULES, Prometheus, dashboard_queries, is_external
from localcsi.testing.synthetic_storage import SPEC, THICK_VG, THIN_POOL, THIN_VG, synthetic_inventory

pytestmark = pytest.mark.unit

NODE = "node-1"
VOLUMES = 100
IO_LIMITS = {("write", "bytes"): 1048576, ("read", "ops"): 100}


class Components:
    """Every localcsi metric family in one registry, as the processes would serve them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = CommandMetrics(self.registry)
        self.rpc = RpcMetrics(self.registry)
        self.controller = ControllerMetrics(self.registry)
        self.volumes = VolumeMetrics(self.registry)
        self.agent = AgentCollector(NODE, 60, registry=self.registry)
        self.inventory = synthetic_inventory(VOLUMES, pool_data=90.0)
        self.agent.record(self.inventory, parse_spec(SPEC), seconds=0.3, commands=3, lvm_commands=1, orphans=1)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3))
        self.resources = {
            f"lv-{i}": {"metadata": {"creationTimestamp": created}, "spec": {"kind": "Volume"},
                        "status": {"phase": "Ready" if i else "Creating"}}
            for i in range(5)
        }  # fmt: skip
        self.registry.register(PhaseCollector(NODE, lambda: self.resources))
        ExtenderMetrics(Extender(), self.registry)
        self.io = IoCounters(reads=0, read_bytes=0, writes=0, written_bytes=0)
        io_counters = lambda: [(THICK_VG, "lv-1", self.io)]  # noqa: E731
        self.registry.register(IoLimitCollector(lambda: 1, lambda: [(THICK_VG, "lv-1", IO_LIMITS)], io_counters))
        self.controller.leader.set(1)

    def activity(self) -> None:
        """What a few minutes of a working cluster would count."""
        for code in (grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED):
            self.rpc.observe("Controller", "CreateVolume", code, 0.8)
        self.rpc.observe("Node", "NodePublishVolume", grpc.StatusCode.OK, 0.05)
        self.commands.observe(["lvcreate", "-n", "x"], 0.6, Outcome.OK)
        self.commands.observe(["mkfs.ext4", "/dev/x"], 0.2, Outcome.EXIT)
        self.volumes.ready(NODE, self.resources["lv-1"])
        io = self.io
        self.io = IoCounters(io.reads + 2, io.read_bytes + 8192, io.writes + 5, io.written_bytes + 65536)
        self.volumes.failed(NODE, self.resources["lv-0"], "ResourceExhausted")
        self.volumes.reconciled(NODE, "ok")
        self.controller.reconciled(seconds=0.01, writes=1, errors=0, retry=False, stopped=False)
        self.agent.record(self.inventory, parse_spec(SPEC), seconds=0.3, commands=3, lvm_commands=1, orphans=1)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Components]]:
    components = Components()
    server = ObservabilityServer("127.0.0.1:0", registry=components.registry)
    server.start()
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    try:
        rules = project_root() / RULES
        with Prometheus(workdir, {"localcsi": [f"127.0.0.1:{server.port}"]}, rule_files=[rules]) as prometheus:
            prometheus.wait_for_targets()
            for _ in range(2):  # counters that move between scrapes, so that rates are not empty
                components.activity()
                time.sleep(2.0)
            yield prometheus, components
    finally:
        server.stop()


def test_every_dashboard_query_returns_series(scraped: tuple[Prometheus, Components]) -> None:
    prometheus, _ = scraped
    queries = dashboard_queries(rate_interval="10s")
    external = [title for title, expr in queries if is_external(expr)]
    assert set(external) == {"Observed IO per pod (cAdvisor)", "Observed IOPS per pod (cAdvisor)"}
    empty = [f"{title}: {expr}" for title, expr in queries if not is_external(expr) and not prometheus.query(expr)]
    assert not empty, "panels whose query returns nothing:\n" + "\n".join(empty)


def test_values_are_what_the_agent_computed(scraped: tuple[Prometheus, Components]) -> None:
    prometheus, components = scraped
    status = build_status(
        parse_spec(SPEC), components.inventory, [], previous=None, now="t", generation=1,
        patterns=components.agent.device_patterns,
    )  # fmt: skip
    for vg in status["nodeStorageInfo"]["volumeGroups"]:
        if vg["name"] in (THICK_VG, THIN_VG):
            assert prometheus.value("localcsi_vg_allocatable_bytes", vg=vg["name"]) == vg["allocatable"]
    assert prometheus.value("localcsi_thin_pool_data_percent", vg=THIN_VG, pool=THIN_POOL) == 90.0
    assert prometheus.value('sum by (phase) (localcsi_logicalvolumes{kind="Volume"})', phase="Ready") == 4
    assert prometheus.value("count(localcsi_volume_abnormal)") == VOLUMES + VOLUMES // 20
    assert prometheus.value("sum(localcsi_controller_leader)") == 1
    assert prometheus.value('localcsi_volume_io_limit{unit="bytes"}', lv="lv-1", direction="write") == 1048576
    assert prometheus.value('localcsi_volume_io_limit{unit="ops"}', lv="lv-1", direction="read") == 100


def test_the_rules_load_and_a_filling_thin_pool_alert_is_pending(scraped: tuple[Prometheus, Components]) -> None:
    prometheus, _ = scraped
    alerts = {a["labels"]["alertname"]: a for a in prometheus.alerts()}
    pool = alerts["LocalcsiThinPoolFilling"]
    assert pool["state"] == "pending"  # for: 5m
    assert {k: pool["labels"][k] for k in ("node", "vg", "pool", "severity")} == {
        "node": NODE, "vg": THIN_VG, "pool": THIN_POOL, "severity": "warning"
    }  # fmt: skip
    assert "LocalcsiNoControllerLeader" not in alerts
    groups = prometheus.api("rules")["groups"]
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])
    assert sum(len(group["rules"]) for group in groups) == 10
