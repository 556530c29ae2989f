"""Monitoring in the chart: every localcsi container serves /metrics on a declared port, the scrape
annotations and the ServiceMonitor reach those ports, and the dashboard and the rules are the chart's files."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pod_spec import all_containers

from localcsi import cli
from localcsi.testing.install import load_project_script
from localcsi.testing.prometheus import dashboard_queries

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "localcsi"
GENERATE = load_project_script("deploy/generate.py")
ALL_ON = ("--values", str(CHART / "ci" / "all-on-values.yaml"))
ALL_OFF = ("--values", str(CHART / "ci" / "all-off-values.yaml"))
Object = dict[str, Any]


@functools.cache
def render(*values: str) -> tuple[Object, ...]:
    return tuple(doc for doc in yaml.safe_load_all(GENERATE.template(values, crds=False)) if doc)


def workloads(objects: tuple[Object, ...]) -> dict[str, Object]:
    return {doc["metadata"]["name"]: doc for doc in objects if doc["kind"] in ("Deployment", "DaemonSet")}


def metrics_ports(workload: Object) -> dict[str, int]:
    """Port name -> number of each localcsi container's --metrics-address (the extender: --listen)."""
    ports: dict[str, int] = {}
    for container in all_containers(workload["spec"]["template"]["spec"]):
        if not container["image"].split("/")[-1].startswith("localcsi:"):
            continue
        args = cli.parse_args(container["args"])
        address = args.listen if args.command == "extender" else args.metrics_address
        assert address, f"{container['name']}: serves no metrics"
        number = int(address.rpartition(":")[2])
        declared = {port["containerPort"]: port["name"] for port in container.get("ports", [])}
        assert number in declared, f"{container['name']}: metrics port {number} is not declared"
        ports[declared[number]] = number
    return ports


@pytest.mark.parametrize("values", [(), ALL_ON, ALL_OFF], ids=["defaults", "all-on", "all-off"])
def test_every_localcsi_container_serves_metrics_on_a_declared_port(values: tuple[str, ...]) -> None:
    found = {name: metrics_ports(workload) for name, workload in workloads(render(*values)).items()}
    expected = {
        "localcsi-node": {"metrics": 9808, "agent-metrics": 9810},
        "localcsi-csi-controller": {"metrics": 9808},
        "localcsi-controller": {"metrics": 9808},
        "localcsi-extender": {"http": 8099},
        "localcsi-webhook": {"metrics": 9808},
        "localcsi-snapshot-controller": {},
    }
    assert found == {name: ports for name, ports in expected.items() if name in found}
    for name, workload in workloads(render(*values)).items():
        spec = workload["spec"]["template"]["spec"]
        names = [port["name"] for container in all_containers(spec) for port in container.get("ports", [])]
        assert len(set(names)) == len(names), f"{name}: port names must be unique in a pod"


def test_scrape_annotations_name_a_metrics_port_or_are_off() -> None:
    for name, workload in workloads(render()).items():
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if name == "localcsi-snapshot-controller":
            assert not annotations
            continue
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) in metrics_ports(workload).values(), name
    assert int(workloads(render())["localcsi-node"]["spec"]["template"]["metadata"]["annotations"]
               ["prometheus.io/port"]) == 9810, "the agent's: capacity, thin pools, volume health"  # fmt: skip
    for workload in workloads(render(*ALL_OFF)).values():
        assert "annotations" not in workload["spec"]["template"]["metadata"]


def test_the_dashboard_config_map_holds_the_dashboard() -> None:
    (config_map,) = [doc for doc in render() if doc["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["localcsi.json"])
    assert dashboard == json.loads((CHART / "files" / "localcsi-dashboard.json").read_text())
    assert dashboard["uid"] == "localcsi" and dashboard_queries(), "panels with queries"
    (labelled,) = [doc for doc in render(*ALL_ON) if doc["kind"] == "ConfigMap"]
    assert labelled["metadata"]["labels"]["team"] == "storage"
    assert not [doc for doc in render(*ALL_OFF) if doc["kind"] == "ConfigMap"]


def test_dashboard_panels_have_unique_ids_and_only_localcsi_or_cadvisor_metrics() -> None:
    dashboard = json.loads((CHART / "files" / "localcsi-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["description"], panel["title"]
    for title, expr in dashboard_queries():
        assert "localcsi_" in expr or "container_" in expr, title


def test_prometheus_rule_and_service_monitor_only_when_asked_for() -> None:
    kinds = {doc["kind"] for doc in render()}
    assert not kinds & {"PrometheusRule", "ServiceMonitor"}
    assert not [doc for doc in render() if doc["kind"] == "Service" and doc["metadata"]["name"].endswith("-metrics")]
    objects = render(*ALL_ON)
    (rule,) = [doc for doc in objects if doc["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "localcsi-rules.yaml").read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_service_monitor_reaches_every_metrics_port() -> None:
    objects = render(*ALL_ON)
    (monitor,) = [doc for doc in objects if doc["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoints = {endpoint["port"]: endpoint for endpoint in monitor["spec"]["endpoints"]}
    assert {e["interval"] for e in endpoints.values()} == {"15s"}
    assert {e["path"] for e in endpoints.values()} == {"/metrics"}
    pods = workloads(objects)
    reached: dict[str, set[str]] = {}
    for service in (doc for doc in objects if doc["kind"] == "Service"):
        if not selector.items() <= service["metadata"]["labels"].items():
            continue
        (workload,) = [w for w in pods.values() if service["spec"]["selector"].items()
                       <= w["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        declared = metrics_ports(workload)
        for port in service["spec"]["ports"]:
            if port["name"] in endpoints:
                assert declared[port.get("targetPort", port["name"])] == port["port"], service["metadata"]["name"]
                reached.setdefault(workload["metadata"]["name"], set()).add(port["name"])
    assert reached == {
        "localcsi-node": {"metrics", "agent-metrics"},
        "localcsi-csi-controller": {"metrics"},
        "localcsi-controller": {"metrics"},
        "localcsi-extender": {"http"},
    }
    without_extender = render(*ALL_ON, "--set", "extender.enabled=false")
    (monitor,) = [doc for doc in without_extender if doc["kind"] == "ServiceMonitor"]
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics", "agent-metrics"]
