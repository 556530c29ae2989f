"""deploy/scheduler and deploy/extender: what kube-scheduler is told matches what the extender serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi.cli import build_parser
from localcsi.extender.main import split_listen
from localcsi.testing.scheduler import scheduler_config
from localcsi.webhook import CAPACITY_RESOURCE

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
CONFIG = DEPLOY / "scheduler" / "kube-scheduler-config.yaml"
WORKLOADS = [DEPLOY / "scheduler" / "static-pod.yaml", DEPLOY / "scheduler" / "deployment.yaml"]
STANDALONE = DEPLOY / "extender" / "deployment.yaml"


def docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def the_extender(config: dict[str, Any]) -> dict[str, Any]:
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    (extender,) = config["extenders"]
    return dict(extender)


def pod_specs(path: Path) -> list[dict[str, Any]]:
    specs = []
    for doc in docs(path):
        if doc["kind"] == "Pod":
            specs.append(doc["spec"])
        elif doc["kind"] == "Deployment":
            specs.append(doc["spec"]["template"]["spec"])
    return specs


def extender_containers(path: Path) -> list[dict[str, Any]]:
    return [c for spec in pod_specs(path) for c in spec["containers"] if c.get("args", [""])[0] == "extender"]


def test_the_scheduler_calls_the_verbs_the_extender_serves() -> None:
    extender = the_extender(docs(CONFIG)[0])
    assert (extender["filterVerb"], extender["prioritizeVerb"]) == ("filter", "prioritize")
    assert "bindVerb" not in extender and "preemptVerb" not in extender
    assert extender["nodeCacheCapable"] is True
    assert extender["enableHTTPS"] is False
    assert isinstance(extender["ignorable"], bool)
    # Only pods the webhook marked reach the filter, and kube-scheduler does not count the marker itself.
    assert extender["managedResources"] == [{"name": CAPACITY_RESOURCE, "ignoredByScheduler": True}]
    assert 1 <= extender["weight"] <= 10


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.name)
def test_each_scheduler_has_its_own_extender_on_the_url_it_calls(path: Path) -> None:
    (container,) = extender_containers(path)
    args = build_parser().parse_args(container["args"])
    assert args.command == "extender"
    host, port = split_listen(args.listen)
    config_maps = [d for d in docs(path) if d["kind"] == "ConfigMap"]
    config = yaml.safe_load(config_maps[0]["data"]["config.yaml"]) if config_maps else docs(CONFIG)[0]
    assert the_extender(config)["urlPrefix"] == f"http://{host}:{port}"
    assert host == "127.0.0.1"  # loopback: nothing but its scheduler can hold space


def test_the_second_scheduler_is_configured_like_the_first() -> None:
    (config_map,) = [d for d in docs(WORKLOADS[1]) if d["kind"] == "ConfigMap"]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert the_extender(config) == the_extender(docs(CONFIG)[0])
    assert [p["schedulerName"] for p in config["profiles"]] == ["localcsi-scheduler"]


def test_the_standalone_extender_runs_exactly_once() -> None:
    (deployment,) = [d for d in docs(STANDALONE) if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    (container,) = extender_containers(STANDALONE)
    args = build_parser().parse_args(container["args"])
    (service,) = [d for d in docs(STANDALONE) if d["kind"] == "Service"]
    assert service["spec"]["ports"][0]["port"] == split_listen(args.listen)[1]


def test_the_test_harness_configures_the_extender_as_deployed() -> None:
    shipped = the_extender(docs(CONFIG)[0])
    config = scheduler_config(Path("kubeconfig"), "http://127.0.0.1:1", ignorable=True, managed_resources=True)
    harness = the_extender(config)
    assert set(harness) == set(shipped)
    keys = (
        "filterVerb",
        "prioritizeVerb",
        "nodeCacheCapable",
        "enableHTTPS",
        "weight",
        "ignorable",
        "managedResources",
    )
    for key in keys:
        assert harness[key] == shipped[key], key
    # Without the webhook (the e2e harness), the extender is asked about every pod.
    unmanaged = the_extender(scheduler_config(Path("kubeconfig"), "http://127.0.0.1:1", ignorable=True))
    assert unmanaged == {key: value for key, value in harness.items() if key != "managedResources"}
