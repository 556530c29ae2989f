import copy
from collections.abc import Callable
from typing import Any

import pytest

from localcsi.controller.reconciler import (
    INIT_CONFIG_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Reconciler,
    plan,
)
from localcsi.k8s.errors import Conflict, Invalid, KubeError

pytestmark = pytest.mark.unit

Object = dict[str, Any]
NOW = "2025-01-01T00:00:00Z"
GLOBAL = {"listConfig": {"vgs": {"include": ["^pool-[0-9]+$"]}}, "resourceToBeInited": {"vgs": []}}
SSD = {
    "selector": {"matchLabels": {"disk": "ssd"}},
    "resourceToBeInited": {"vgs": [{"name": "ssd", "devices": ["/dev/vdc"]}]},
}


def node(name: str, uid: str | None = None, **labels: str) -> Object:
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}", "labels": labels}}


def init_config(name: str = "localcsi", *nodes_config: Object, generation: int = 1) -> Object:
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"globalConfig": copy.deepcopy(GLOBAL), "nodesConfig": list(nodes_config)},
    }


class FakeResources:
    """Stores objects like the apiserver: resourceVersion, status kept on main-resource writes, optional
    normalise() standing in for defaults and pruning."""

    def __init__(self, normalise: Callable[[Object], Object] | None = None) -> None:
        self.objects: dict[str, Object] = {}
        self.calls: list[tuple[str, str]] = []
        self.statuses: dict[str, Object] = {}
        self.fail: dict[tuple[str, str], KubeError] = {}
        self.version = 0
        self._normalise = normalise or (lambda spec: spec)

    def _check(self, action: str, name: str) -> None:
        self.calls.append((action, name))
        error = self.fail.pop((action, name), None)
        if error is not None:
            raise error

    def _stored(self, body: Object, status: Object | None) -> Object:
        self.version += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.version)
        obj["spec"] = self._normalise(obj["spec"])
        obj.pop("status", None)
        if status is not None:
            obj["status"] = status
        self.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    def create(self, body: Object) -> Object:
        self._check("create", body["metadata"]["name"])
        return self._stored(body, None)

    def replace(self, body: Object) -> Object:
        name = body["metadata"]["name"]
        self._check("replace", name)
        current = self.objects[name]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        return self._stored(body, current.get("status"))

    def delete(self, name: str) -> bool:
        self._check("delete", name)
        return self.objects.pop(name, None) is not None

    def patch_status(self, name: str, status: Object) -> Object:
        self._check("patch_status", name)
        self.statuses[name] = copy.deepcopy(status)
        return {"metadata": {"name": name}, "status": status}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, involved: Object, event_type: str, reason: str, message: str) -> None:
        self.events.append((involved["metadata"]["name"], event_type, reason))


def leading() -> bool:
    return True


class World:
    def __init__(self, normalise: Callable[[Object], Object] | None = None) -> None:
        self.storages = FakeResources(normalise)
        self.configs = FakeResources()
        self.recorder = Recorder()
        self.reconciler = Reconciler(self.storages, self.configs, "localcsi", self.recorder, now=lambda: NOW)
        self.nodes: dict[str, Object] = {}
        self.config_objects: dict[str, Object] = {}

    def reconcile(self, still_leading: Callable[[], bool] = leading) -> Any:
        outcome = self.reconciler.reconcile(
            self.nodes, copy.deepcopy(self.config_objects), copy.deepcopy(self.storages.objects), still_leading
        )
        for name, status in self.configs.statuses.items():  # what the informer would deliver next
            if name in self.config_objects:
                self.config_objects[name]["status"] = copy.deepcopy(status)
        return outcome


def test_one_storage_per_node_with_the_merged_spec_labels_and_owner() -> None:
    world = World()
    world.nodes = {"a": node("a"), "b": node("b", disk="ssd")}
    world.config_objects = {"localcsi": init_config("localcsi", SSD)}
    outcome = world.reconcile()
    assert outcome.writes == 2 and not outcome.retry
    a, b = world.storages.objects["a"], world.storages.objects["b"]
    assert a["spec"] == {**GLOBAL, "nodeName": "a"}
    assert b["spec"]["resourceToBeInited"] == SSD["resourceToBeInited"]
    assert b["spec"]["listConfig"] == GLOBAL["listConfig"]
    assert a["metadata"]["labels"] == {MANAGED_BY_LABEL: MANAGED_BY, INIT_CONFIG_LABEL: "localcsi"}
    assert a["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "a", "uid": "uid-a"}]
    status = world.configs.statuses["localcsi"]
    assert status["nodes"] == 2
    ready, selectors = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Synced")
    assert ready["observedGeneration"] == 1 and ready["lastTransitionTime"] == NOW
    assert (selectors["type"], selectors["status"]) == ("SelectorsValid", "True")


def test_second_pass_writes_nothing() -> None:
    world = World()
    world.nodes = {"a": node("a"), "b": node("b", disk="ssd")}
    world.config_objects = {"localcsi": init_config("localcsi", SSD)}
    world.reconcile()
    calls = len(world.storages.calls) + len(world.configs.calls)
    outcome = world.reconcile()
    assert outcome.writes == 0
    assert len(world.storages.calls) + len(world.configs.calls) == calls


def test_new_node_gets_a_storage_and_deleted_node_loses_only_a_managed_one() -> None:
    world = World()
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    world.storages.objects["hand-made"] = {"metadata": {"name": "hand-made"}, "spec": {"nodeName": "hand-made"}}
    world.nodes = {"b": node("b")}
    world.reconcile()
    assert sorted(world.storages.objects) == ["b", "hand-made"]
    assert ("delete", "a") in world.storages.calls
    assert ("delete", "hand-made") not in world.storages.calls
    assert world.configs.statuses["localcsi"]["nodes"] == 1


def test_without_the_init_config_nothing_is_created_but_cleanup_still_happens() -> None:
    world = World()
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    world.config_objects = {}
    world.nodes = {"c": node("c")}
    world.reconcile()
    assert world.storages.objects == {}
    assert world.storages.calls[-1] == ("delete", "a")


def test_config_edit_updates_spec_and_keeps_status_and_foreign_metadata() -> None:
    world = World()
    world.nodes = {"a": node("a", disk="ssd")}
    world.config_objects = {"localcsi": init_config(generation=1)}
    world.reconcile()
    stored = world.storages.objects["a"]
    stored["status"] = {"nodeStorageInfo": {"volumeGroups": [{"name": "pool-0"}]}}
    stored["metadata"]["labels"]["team"] = "storage"
    world.config_objects["localcsi"] = init_config("localcsi", SSD, generation=2)
    outcome = world.reconcile()
    assert outcome.writes == 1
    after = world.storages.objects["a"]
    assert after["spec"]["resourceToBeInited"] == SSD["resourceToBeInited"]
    assert after["status"] == {"nodeStorageInfo": {"volumeGroups": [{"name": "pool-0"}]}}
    assert after["metadata"]["labels"]["team"] == "storage"
    assert world.configs.statuses["localcsi"]["conditions"][0]["observedGeneration"] == 2


def test_hand_edited_spec_is_put_back() -> None:
    world = World()
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    world.storages.objects["a"]["spec"]["listConfig"] = {"vgs": {"include": ["^everything$"]}}
    assert world.reconcile().writes == 1
    assert world.storages.objects["a"]["spec"]["listConfig"] == GLOBAL["listConfig"]


def test_defaults_added_by_the_apiserver_cause_no_update() -> None:
    def add_defaults(spec: Object) -> Object:
        return {**spec, "listConfig": {**spec.get("listConfig", {}), "devices": {"include": ["^vd"]}}}

    world = World(add_defaults)
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    assert world.reconcile().writes == 0


def test_a_field_the_apiserver_prunes_costs_one_write_not_a_loop() -> None:
    def prune(spec: Object) -> Object:
        return {key: value for key, value in spec.items() if key != "unknownSection"}

    world = World(prune)
    world.nodes = {"a": node("a")}
    config = init_config()
    config["spec"]["globalConfig"]["unknownSection"] = {"x": 1}
    world.config_objects = {"localcsi": config}
    assert world.reconcile().writes == 1
    assert world.reconcile().writes == 0
    assert world.reconcile().writes == 0


def test_recreated_node_gets_its_new_uid_in_the_owner_reference() -> None:
    world = World()
    world.nodes = {"a": node("a", uid="old")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    world.nodes = {"a": node("a", uid="new")}
    assert world.reconcile().writes == 1
    assert world.storages.objects["a"]["metadata"]["ownerReferences"][0]["uid"] == "new"


def test_losing_leadership_stops_writes_at_once() -> None:
    world = World()
    world.nodes = {name: node(name) for name in "abcde"}
    world.config_objects = {"localcsi": init_config()}
    budget = iter([True, True])
    outcome = world.reconcile(lambda: next(budget, False))
    assert outcome.stopped
    assert outcome.writes == 2
    assert len(world.storages.calls) == 2
    assert world.configs.calls == []


def test_lost_race_is_retried_without_a_failure_condition() -> None:
    world = World()
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    world.storages.objects["a"]["spec"]["listConfig"] = {}
    world.storages.fail[("replace", "a")] = Conflict(409, "Conflict", "modified")
    outcome = world.reconcile()
    assert outcome.retry and outcome.writes == 0 and outcome.errors == 0
    assert world.configs.statuses["localcsi"]["conditions"][0]["status"] == "True"


def test_rejected_write_is_reported_in_ready_and_an_event() -> None:
    world = World()
    world.nodes = {"a": node("a"), "b": node("b")}
    world.config_objects = {"localcsi": init_config()}
    world.storages.fail[("create", "b")] = Invalid(422, "Invalid", "spec.nodeName: Invalid value")
    outcome = world.reconcile()
    assert outcome.retry and (outcome.writes, outcome.errors) == (1, 1)
    status = world.configs.statuses["localcsi"]
    assert status["nodes"] == 1
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "SyncFailed")
    assert "create NodeLocalStorage b" in ready["message"] and "Invalid value" in ready["message"]
    assert world.recorder.events == [("localcsi", "Warning", "SyncFailed")]
    world.reconcile()
    assert world.configs.statuses["localcsi"]["conditions"][0]["status"] == "True"


def test_invalid_selector_is_reported_once_and_the_other_entries_still_apply() -> None:
    world = World()
    world.nodes = {"a": node("a", disk="ssd")}
    bad = {"selector": {"matchExpressions": [{"key": "zone", "operator": "In"}]}, "reservedSpace": []}
    world.config_objects = {"localcsi": init_config("localcsi", bad, SSD)}
    world.reconcile()
    assert world.storages.objects["a"]["spec"]["resourceToBeInited"] == SSD["resourceToBeInited"]
    selectors = world.configs.statuses["localcsi"]["conditions"][1]
    assert (selectors["status"], selectors["reason"]) == ("False", "InvalidSelector")
    assert "nodesConfig[0]" in selectors["message"] and "needs at least one value" in selectors["message"]
    world.reconcile()
    assert world.recorder.events == [("localcsi", "Warning", "InvalidSelector")]


def test_other_init_configs_are_marked_not_selected() -> None:
    world = World()
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config(), "other": init_config("other", SSD)}
    world.reconcile()
    other = world.configs.statuses["other"]
    assert other["nodes"] == 0
    assert (other["conditions"][0]["status"], other["conditions"][0]["reason"]) == ("False", "NotSelected")
    assert "'localcsi'" in other["conditions"][0]["message"]
    assert world.storages.objects["a"]["metadata"]["labels"][INIT_CONFIG_LABEL] == "localcsi"


def test_transition_time_moves_only_when_the_status_does() -> None:
    world = World()
    world.nodes = {"a": node("a")}
    world.config_objects = {"localcsi": init_config()}
    world.reconcile()
    world.reconciler._now = lambda: "2025-02-02T00:00:00Z"
    world.nodes = {"a": node("a"), "b": node("b")}
    world.reconcile()
    ready = world.configs.statuses["localcsi"]["conditions"][0]
    assert ready["lastTransitionTime"] == NOW
    assert ready["message"].startswith("2 of 2")


def test_plan_skips_storages_already_being_deleted() -> None:
    storage = {
        "metadata": {"name": "gone", "labels": {MANAGED_BY_LABEL: MANAGED_BY}, "deletionTimestamp": NOW},
        "spec": {"nodeName": "gone"},
    }
    assert plan({}, None, {"gone": storage}, {}).delete == []
