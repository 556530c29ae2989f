"""ClusterBackend over an in-memory apiserver, with a scripted agent standing in for the node."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import GiB, MiB
from localcsi.driver.backend import VolumePlan
from localcsi.driver.cluster_backend import RETRY_ANNOTATION, ClusterBackend
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.requests import CreateVolumeRequest, ExpandVolumeRequest
from localcsi.driver.topology import TopologyRequirement
from localcsi.resources import logicalvolume as llv
from localcsi.testing.fake_resources import FakeResources

pytestmark = pytest.mark.unit

VG = "localcsi-a"
MOUNT = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)
Obj = dict[str, Any]


def _size_only_grows(new: Obj, old: Obj | None) -> str | None:
    if old is not None and new["spec"]["size"] < old["spec"]["size"]:
        return 'spec: Invalid value: "object": size may only grow'
    return None


class FakeAgent:
    """Answers LogicalVolumes like the node agent: finalizer, then a status, per a scripted reply."""

    def __init__(self, resources: FakeResources) -> None:
        self.resources = resources
        self.reply: Callable[[Obj], Obj | None] = self.ready
        self.refuse_delete: str | None = None
        self.handled: list[str] = []
        self._answered: dict[str, str | None] = {}  # name -> the retry stamp its last refusal answered
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def ready(obj: Obj) -> Obj:
        return {"phase": "Ready", "currentSize": obj["spec"]["size"], "volumeId": str(llv.ref(obj)), "code": None,
                "observedGeneration": obj["metadata"]["generation"]}  # fmt: skip

    def start(self) -> FakeAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        version = "0"
        while not self._stop.is_set():
            for event in self.resources.watch(version, 1):
                version = event.object["metadata"]["resourceVersion"]
                if event.type != "DELETED" and not self._stop.is_set():
                    self._handle(event.object["metadata"]["name"])

    def _handle(self, name: str) -> None:
        obj = self.resources.get(name)
        if obj is None:
            return
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            stamp = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
            if name in self._answered and self._answered[name] == stamp:
                return  # already answered; like the agent, try again only when a retry is asked for
            refusal = self.refuse_delete
            if refusal:  # like the agent: clear the last error, try, report the new one
                self._answered[name] = stamp
                self.resources.patch_status(name, {"phase": "Deleting", "code": None, "message": "removing"})
                self.resources.patch_status(name, {"code": "FailedPrecondition", "message": refusal})
            else:
                self.resources.patch(name, {"metadata": {"finalizers": []}})
            return
        status = obj.get("status") or {}
        done = status.get("observedGeneration") == meta["generation"] and not status.get("code")
        if status.get("phase") == "Failed" or done:
            return
        if not meta.get("finalizers"):
            self.resources.patch(name, {"metadata": {"finalizers": [llv.FINALIZER]}})
        reply = self.reply(obj)
        if reply is not None:
            self.handled.append(name)
            self.resources.patch_status(name, reply)


def nls(node: str, free_gib: int) -> Obj:
    group = {"name": VG, "total": 20 * GiB, "available": free_gib * GiB, "allocatable": free_gib * GiB,
             "extentSize": 4 * MiB}  # fmt: skip
    return {
        "metadata": {"name": node},
        "spec": {"nodeName": node},
        "status": {"nodeStorageInfo": {"volumeGroups": [group]}, "filteredStorageInfo": {"volumeGroups": [VG]}},
    }


@pytest.fixture
def volumes() -> Iterator[FakeResources]:
    fake = FakeResources(validate=_size_only_grows)
    yield fake
    fake.close()


@pytest.fixture
def storages() -> Iterator[FakeResources]:
    fake = FakeResources()
    for node, free in (("node-1", 8), ("node-2", 12)):
        body = nls(node, free)
        fake.create({key: value for key, value in body.items() if key != "status"})
        fake.patch_status(node, body["status"])
    yield fake
    fake.close()


@pytest.fixture
def agent(volumes: FakeResources) -> Iterator[FakeAgent]:
    fake = FakeAgent(volumes).start()
    yield fake
    fake.stop()


@pytest.fixture
def backend(volumes: FakeResources, storages: FakeResources) -> Iterator[ClusterBackend]:
    cluster = ClusterBackend(volumes, storages, timeout=2.0, recheck=0.2).start(sync_timeout=5)
    yield cluster
    cluster.stop()


def request(name: str = "pvc-1", size: int = GiB, node: str | None = None, **params: str) -> CreateVolumeRequest:
    topology = TopologyRequirement(requisite=({"topology.localcsi.io/node": node},)) if node else None
    return CreateVolumeRequest(name, (MOUNT,), size, 0, {"vgName": VG, **params}, None, topology)


def test_create_writes_one_resource_and_returns_the_agents_volume(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    driver = ControllerDriver(backend)
    volume = driver.create_volume(request(node="node-1"))
    obj = volumes.get(volume_lv_name("pvc-1"))
    assert obj is not None
    assert obj["metadata"]["labels"] == {llv.NODE_LABEL: "node-1"}
    assert (obj["spec"]["nodeName"], obj["spec"]["vgName"], obj["spec"]["csiName"]) == ("node-1", VG, "pvc-1")
    assert volume.id == f"node-1/{VG}/{volume_lv_name('pvc-1')}"
    assert volume.size_bytes == GiB and volume.fs_type == "ext4"

    again = driver.create_volume(request(node="node-1"))
    assert again == volume
    assert [call for call in volumes.calls if call[0] == "create"] == [("create", volume_lv_name("pvc-1"))]


def test_immediate_binding_picks_the_node_with_most_free_space(backend: ClusterBackend, agent: FakeAgent) -> None:
    assert backend.nodes() == ("node-2", "node-1")
    volume = ControllerDriver(backend).create_volume(request())
    assert volume.ref.node == "node-2"


def test_a_create_the_agent_does_not_answer_is_deadline_exceeded_and_the_retry_waits_on_it(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    agent.reply = lambda obj: None  # the agent is down
    backend.timeout = 0.5
    driver = ControllerDriver(backend)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="node-1 may be down"):
        driver.create_volume(request(node="node-1"))
    assert time.monotonic() - started < 2
    first = volumes.get(volume_lv_name("pvc-1"))
    assert first is not None, "the intent stays for the agent"

    agent.reply = FakeAgent.ready  # the agent is back; it answers the next change it sees
    backend.timeout = 3.0
    threading.Timer(0.2, lambda: volumes.patch(llv.name(first), {"metadata": {"annotations": {"poke": "1"}}})).start()
    volume = driver.create_volume(request(node="node-1"))
    assert volume.ref.node == "node-1"
    latest = volumes.get(volume_lv_name("pvc-1"))
    assert latest is not None and latest["metadata"]["uid"] == first["metadata"]["uid"], "the same resource"
    assert [call for call in volumes.calls if call[0] == "create"] == [("create", volume_lv_name("pvc-1"))]


def test_a_failed_create_reports_the_agents_code_and_removes_the_resource(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    agent.reply = lambda obj: {"phase": "Failed", "code": "ResourceExhausted", "message": "VG localcsi-a is full",
                               "observedGeneration": obj["metadata"]["generation"]}  # fmt: skip
    with pytest.raises(ResourceExhausted, match="node node-1: VG localcsi-a is full"):
        backend.create_volume(_plan_on("node-1"))
    deadline = time.monotonic() + 3
    while volumes.get(volume_lv_name("pvc-1")) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert volumes.get(volume_lv_name("pvc-1")) is None, "a retry places the volume afresh"


def _plan_on(node: str, name: str = "pvc-1", size: int = GiB) -> VolumePlan:
    return VolumePlan(make_ref(node, VG, volume_lv_name(name)), name, Placement(VG, size, LvmType.LINEAR), size)


def test_a_different_request_for_an_existing_name_is_already_exists(backend: ClusterBackend, agent: FakeAgent) -> None:
    backend.create_volume(_plan_on("node-1"))
    with pytest.raises(AlreadyExists, match="asks for"):
        backend.create_volume(_plan_on("node-1", size=2 * GiB))


def test_delete_removes_the_resource_after_the_agent_lets_it_go(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    driver = ControllerDriver(backend)
    volume = driver.create_volume(request(node="node-1"))
    driver.delete_volume(volume.id)
    assert volumes.get(volume.ref.lv) is None
    driver.delete_volume(volume.id)  # idempotent
    assert ("delete", volume.ref.lv) in volumes.calls


def test_a_deletion_the_agent_refuses_reports_why(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    volume = backend.create_volume(_plan_on("node-1"))
    agent.refuse_delete = "LV is open (mounted or in use); unpublish it first"
    with pytest.raises(FailedPrecondition, match="unpublish it first"):
        backend.delete_volume(volume)
    with pytest.raises(FailedPrecondition, match="unpublish it first"):
        backend.delete_volume(volume)  # refused again on the retry it asked for, not from the stale status
    agent.refuse_delete = None  # unmounted
    backend.delete_volume(volume)
    assert volumes.get(volume.ref.lv) is None
    retries = [c for c in volumes.calls if c == ("patch", volume.ref.lv)]
    assert len(retries) >= 2, "each retry touched the resource to wake the agent"


def test_a_volume_with_thick_snapshots_is_not_deleted(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    driver = ControllerDriver(backend)
    volume = driver.create_volume(request(node="node-1"))
    snapshot = driver.snapshots.create("snap-1", volume.id, {})
    assert snapshot.source_volume_id == volume.id and not snapshot.thin and snapshot.ready
    assert snapshot.id == f"node-1/{VG}/{snapshot_lv_name('snap-1')}"
    spec = (volumes.get(snapshot.ref.lv) or {})["spec"]
    assert spec["kind"] == "Snapshot" and spec["cowSize"] >= GiB
    with pytest.raises(FailedPrecondition, match="thick snapshots"):
        driver.delete_volume(volume.id)
    assert volumes.get(volume.ref.lv) is not None
    driver.snapshots.delete(snapshot.id)
    assert volumes.get(snapshot.ref.lv) is None
    driver.delete_volume(volume.id)


def test_expand_patches_the_size_and_waits_for_the_agent(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    driver = ControllerDriver(backend)
    volume = driver.create_volume(request(node="node-1"))
    expanded, node_expansion = driver.expand_volume(ExpandVolumeRequest(volume.id, 3 * GiB, 0, MOUNT))
    assert expanded.size_bytes == 3 * GiB and node_expansion
    obj = volumes.get(volume.ref.lv)
    assert obj is not None and obj["spec"]["size"] == 3 * GiB and obj["metadata"]["generation"] == 2
    same, _ = driver.expand_volume(ExpandVolumeRequest(volume.id, 2 * GiB, 0, MOUNT))
    assert same.size_bytes == 3 * GiB, "never shrinks"


def test_an_expansion_the_agent_refuses_reports_its_code(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    volume = backend.create_volume(_plan_on("node-1"))
    agent.reply = lambda obj: {"code": "ResourceExhausted", "message": "not enough free space",
                               "observedGeneration": obj["metadata"]["generation"]}  # fmt: skip
    with pytest.raises(ResourceExhausted, match="not enough free space"):
        backend.expand_volume(volume, 4 * GiB)
    agent.reply = FakeAgent.ready  # space was freed: the retry wakes the agent and succeeds
    assert backend.expand_volume(volume, 4 * GiB).size_bytes == 4 * GiB


def test_reads_come_from_the_cache(backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent) -> None:
    driver = ControllerDriver(backend)
    made = [driver.create_volume(request(f"pvc-{i}", node="node-1")) for i in range(3)]
    deadline = time.monotonic() + 3
    while len(driver.list_volumes(0, "").entries) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    gets = len([call for call in volumes.calls if call[0] == "get"])
    page = driver.list_volumes(0, "")
    assert sorted(v.id for v in page.entries) == sorted(v.id for v in made)
    assert driver.get_volume(made[0].id) == made[0]
    assert len([call for call in volumes.calls if call[0] == "get"]) == gets, "no apiserver call"


def test_an_unfinished_volume_is_not_listed_and_a_foreign_id_is_not_found(
    backend: ClusterBackend, volumes: FakeResources, agent: FakeAgent
) -> None:
    agent.reply = lambda obj: {"phase": "Creating", "message": "copying"}
    backend.timeout = 0.3
    driver = ControllerDriver(backend)
    with pytest.raises(DeadlineExceeded, match="copying"):
        driver.create_volume(request(node="node-1"))
    assert driver.list_volumes(0, "").entries == ()
    lv = volume_lv_name("pvc-1")
    with pytest.raises(NotFound):
        driver.get_volume(f"node-1/{VG}/{lv}")
    assert backend.get_volume(LvRef("node-2", VG, lv)) is None, "the resource is on node-1"


def test_start_fails_clearly_when_the_apiserver_cannot_be_listed(volumes: FakeResources) -> None:
    class Unlistable(FakeResources):
        def list(self, label_selector: str | None = None) -> tuple[list[Obj], str]:
            raise OSError("connection refused")

    cluster = ClusterBackend(volumes, Unlistable(), timeout=1)
    with pytest.raises(Unavailable, match="nodelocalstorages"):
        cluster.start(sync_timeout=0.3)
    cluster.stop()


def test_immediate_binding_picks_the_node_with_the_most_room_in_the_requested_vg(volumes: FakeResources) -> None:
    # node-1 has more free space in all, but less in the VG the class asks for.
    storages = FakeResources()
    for node, free, other_free in (("node-1", 4, 30), ("node-2", 6, 0)):
        body = nls(node, free)
        other = {**body["status"]["nodeStorageInfo"]["volumeGroups"][0], "name": "localcsi-other"}
        other.update(available=other_free * GiB, allocatable=other_free * GiB, total=40 * GiB)
        body["status"]["nodeStorageInfo"]["volumeGroups"].append(other)
        body["status"]["filteredStorageInfo"]["volumeGroups"].append("localcsi-other")
        storages.create({key: value for key, value in body.items() if key != "status"})
        storages.patch_status(node, body["status"])
    agent = FakeAgent(volumes).start()
    backend = ClusterBackend(volumes, storages, timeout=2.0, recheck=0.2).start(sync_timeout=5)
    try:
        driver = ControllerDriver(backend)
        assert driver.create_volume(request("pvc-immediate")).ref.node == "node-2"  # no topology
        assert driver.create_volume(request("pvc-pinned", node="node-1")).ref.node == "node-1"  # scheduler's pick
    finally:
        backend.stop()
        agent.stop()
        storages.close()
