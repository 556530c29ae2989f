"""The agent's LogicalVolume reconciler over an in-memory apiserver and an in-memory lvm2.

LocalLvmBackend is real here (the code the agent runs); only lvm2 and the block devices are fakes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from localcsi.agent.lv_reconciler import LogicalVolumeReconciler, _Retry
from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import CoreError, Internal, ResourceExhausted
from localcsi.core.ids import make_ref
from localcsi.core.model import LogicalVolume
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.params import LvmType
from localcsi.core.placement import Placement
from localcsi.core.sizes import GiB, MiB
from localcsi.core.tags import Source, SourceKind
from localcsi.driver import cluster_resources as res
from localcsi.driver.backend import CREATING_TAG, Content, Fill, SnapshotPlan, VolumePlan
from localcsi.driver.cluster_backend import ClusterBackend
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.driver.topology import TopologyRequirement
from localcsi.resources import logicalvolume as llv
from localcsi.testing.fake_lvm import FakeDevices, FakeLvm, Killed, pool, vg
from localcsi.testing.fake_resources import FakeResources

pytestmark = pytest.mark.unit

NODE = "node-1"
VG = "localcsi-a"
Obj = dict[str, Any]


class Life:
    def __init__(self) -> None:
        self.should_exit = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self.should_exit.wait(timeout)


@pytest.fixture
def lvm() -> FakeLvm:
    fake = FakeLvm(vg(VG))
    fake.add(pool(VG, "pool0"))
    return fake


@pytest.fixture
def devices(lvm: FakeLvm) -> FakeDevices:
    return FakeDevices(lvm.calls)


@pytest.fixture
def resources() -> Iterator[FakeResources]:
    fake = FakeResources()
    yield fake
    fake.close()


def reconciler(resources: FakeResources, lvm: FakeLvm, devices: FakeDevices, **options: Any) -> LogicalVolumeReconciler:
    backend = LocalLvmBackend(lvm, NODE, devices=devices)  # a new process: a new view of lvm2
    return LogicalVolumeReconciler(None, NODE, None, Life(), resources=resources, backend=backend, **options)


@pytest.fixture
def agent(resources: FakeResources, lvm: FakeLvm, devices: FakeDevices) -> LogicalVolumeReconciler:
    return reconciler(resources, lvm, devices)


def plan(name: str = "pvc-1", size: int = GiB, node: str = NODE, **changes: Any) -> VolumePlan:
    values: dict[str, Any] = {"content": None, "fs_type": "ext4", "access_type": "mount"}
    values.update(changes)
    placement = values.pop("placement", Placement(VG, size, LvmType.LINEAR))
    return VolumePlan(make_ref(node, VG, volume_lv_name(name)), name, placement, size, **values)


def create(resources: FakeResources, volume_plan: VolumePlan) -> str:
    return llv.name(resources.create(res.volume_resource(volume_plan)))


def obj(resources: FakeResources, name: str) -> Obj:
    found = resources.get(name)
    assert found is not None
    return found


def test_a_volume_gets_the_finalizer_first_then_its_lv_and_a_status_from_lvs(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    name = create(resources, plan())
    original = lvm.create_lv

    def create_lv(spec: Any) -> None:
        assert llv.FINALIZER in obj(resources, name)["metadata"]["finalizers"], "finalizer before the LV"
        assert llv.status(obj(resources, name))["phase"] == "Creating"
        original(spec)

    lvm.create_lv = create_lv  # type: ignore[method-assign]
    agent.reconcile(name)

    [lv] = [lv for lv in lvm.lvs.values() if lv.name == name]
    status = llv.status(obj(resources, name))
    assert status["phase"] == "Ready" and status["currentSize"] == lv.size_bytes == GiB
    assert status["volumeId"] == f"{NODE}/{VG}/{name}" and "code" not in status
    assert status["observedGeneration"] == 1
    [healthy] = status["conditions"]
    assert (healthy["type"], healthy["status"], healthy["reason"]) == ("Healthy", "True", "Healthy")
    assert lv.metadata is not None and lv.metadata.name == "pvc-1"


def test_reconciling_again_changes_nothing(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    name = create(resources, plan())
    agent.reconcile(name)
    calls, writes = list(lvm.calls), len(resources.calls)
    agent.reconcile(name)
    assert lvm.calls == calls, "no lvm2 change"
    assert [c for c in resources.calls[writes:] if c[0] != "get"] == [], "no status write: nothing changed"


def test_a_kill_mid_copy_then_a_restart_converges_to_one_finished_lv(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm, devices: FakeDevices
) -> None:
    origin = create(resources, plan("origin", access_type="block", fs_type=None))
    agent.reconcile(origin)
    snap_ref = make_ref(NODE, VG, snapshot_lv_name("s"))
    source = f"localcsi.io/source=volume:{NODE}/{VG}/{origin}"
    tags = ("localcsi.io", "localcsi.io/kind=snapshot", "localcsi.io/name=cw", f"localcsi.io/size={GiB}", source)
    lvm.create_snapshot(VG, origin, snap_ref.lv, cow_bytes=GiB, tags=tags)
    content = Content(Source(SourceKind.SNAPSHOT, str(snap_ref)), snap_ref, Fill.BLOCK_COPY, False, GiB)
    restored = create(resources, plan("restored", 2 * GiB, content=content))
    devices.kill_during_copy = True
    with pytest.raises(Killed):
        agent.reconcile(restored)
    [half] = [lv for lv in lvm.lvs.values() if lv.name == restored]
    assert CREATING_TAG in half.tags and llv.status(obj(resources, restored))["phase"] == "Creating"

    devices.kill_during_copy = False
    restarted = reconciler(resources, lvm, devices)
    restarted.reconcile(restored)
    [done] = [lv for lv in lvm.lvs.values() if lv.name == restored]
    assert CREATING_TAG not in done.tags
    assert [c[0] for c in lvm.calls].count("create_lv") == 2, "origin and restored, each once"
    copies = [c for c in lvm.calls if c[0] == "copy"]
    assert [c[2] for c in copies] == [f"/dev/{VG}/{restored}"] * 2, "the killed copy, then one redone into the same LV"
    assert llv.status(obj(resources, restored))["phase"] == "Ready"


def test_deletion_wipes_and_removes_the_lv_then_releases_the_resource(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    name = create(resources, plan())
    agent.reconcile(name)
    resources.delete(name)
    assert resources.get(name) is not None, "held by the finalizer"
    agent.reconcile(name)
    assert resources.get(name) is None
    assert ("wipe", f"/dev/{VG}/{name}") in lvm.calls and ("remove_lv", VG, name) in lvm.calls
    assert not any(lv.name == name for lv in lvm.lvs.values())


def test_a_refused_deletion_is_reported_and_retried(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm, devices: FakeDevices
) -> None:
    name = create(resources, plan())
    agent.reconcile(name)
    devices.busy.add(f"/dev/{VG}/{name}")
    resources.delete(name)
    with pytest.raises(_Retry):
        agent.reconcile(name)
    status = llv.status(obj(resources, name))
    assert (status["phase"], status["code"]) == ("Deleting", "FailedPrecondition")
    devices.busy.clear()
    agent.reconcile(name)
    assert resources.get(name) is None


def test_an_lv_of_another_volume_is_never_touched(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    stranger = plan("someone-else")
    lvm.add(LogicalVolume(VG, volume_lv_name("pvc-1"), GiB, "-wi-a-----", layout=("linear",), tags=stranger.tags()))
    name = create(resources, plan())
    agent.reconcile(name)
    status = llv.status(obj(resources, name))
    assert (status["phase"], status["code"]) == ("Failed", "InvalidArgument")
    assert "someone-else" in status["message"]
    resources.delete(name)
    agent.reconcile(name)
    assert resources.get(name) is None
    assert (VG, volume_lv_name("pvc-1")) in lvm.lvs, "the stranger's LV stays"
    assert not any(call[0] in ("wipe", "remove_lv") for call in lvm.calls)


@pytest.mark.parametrize(
    ("error", "phase"),
    [(ResourceExhausted("not enough free space"), "Failed"), (Internal("lvcreate crashed"), "Creating")],
)
def test_errors_fail_the_create_unless_a_retry_can_fix_them(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm, error: CoreError, phase: str
) -> None:
    retried = phase == "Creating"

    def refuse(spec: Any) -> None:
        raise error

    lvm.create_lv = refuse  # type: ignore[method-assign]
    name = create(resources, plan())
    if retried:
        with pytest.raises(_Retry):
            agent.reconcile(name)
    else:
        agent.reconcile(name)
        agent.reconcile(name)  # final: not tried again
    status = llv.status(obj(resources, name))
    assert (status["phase"], status["code"], status["message"]) == (phase, llv.code_name(error.code), error.message)


def test_a_grown_spec_grows_the_lv(agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm) -> None:
    name = create(resources, plan())
    agent.reconcile(name)
    resources.patch(name, {"spec": {"size": 3 * GiB}})
    agent.reconcile(name)
    assert ("extend_lv", VG, name, str(3 * GiB)) in lvm.calls
    status = llv.status(obj(resources, name))
    assert status["currentSize"] == 3 * GiB and status["observedGeneration"] == 2 and status["message"] == "ready"


def test_a_snapshot_resource_makes_a_snapshot_of_its_source(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    thin = Placement(VG, GiB, LvmType.THIN, thin_pool="pool0")
    origin = create(resources, plan("origin", placement=thin))
    agent.reconcile(origin)
    backend = LocalLvmBackend(lvm, NODE)
    source = backend.get_volume(make_ref(NODE, VG, origin))
    assert source is not None
    snap = llv.name(resources.create(res.snapshot_resource(
        SnapshotPlan(make_ref(NODE, VG, snapshot_lv_name("s")), "s", source, None))))  # fmt: skip
    agent.reconcile(snap)
    assert ("create_snapshot", VG, origin, snap, "None") in lvm.calls
    status = llv.status(obj(resources, snap))
    assert status["phase"] == "Ready" and status["volumeId"] == f"{NODE}/{VG}/{snap}"


def test_a_snapshot_of_a_missing_source_fails_not_found(
    agent: LogicalVolumeReconciler, resources: FakeResources
) -> None:
    body = {
        "metadata": {"name": snapshot_lv_name("s"), "labels": {llv.NODE_LABEL: NODE}},
        "spec": {"nodeName": NODE, "vgName": VG, "kind": "Snapshot", "csiName": "s", "size": GiB, "cowSize": MiB,
                 "source": {"kind": "Volume", "id": f"{NODE}/{VG}/{volume_lv_name('gone')}"}},
    }  # fmt: skip
    name = llv.name(resources.create(body))
    agent.reconcile(name)
    status = llv.status(obj(resources, name))
    assert (status["phase"], status["code"]) == ("Failed", "NotFound")


def test_another_nodes_resource_is_ignored(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    name = create(resources, plan(node="node-2"))
    agent.reconcile(name)
    assert "status" not in obj(resources, name) and not obj(resources, name)["metadata"].get("finalizers")
    assert lvm.calls == []


# -- the whole loop, with the controller's backend on the other side -------------------------------


def test_run_serves_the_cluster_backend_end_to_end(
    resources: FakeResources, lvm: FakeLvm, devices: FakeDevices
) -> None:
    storages = FakeResources()
    group = {"name": VG, "total": 8 * GiB, "available": 8 * GiB, "allocatable": 8 * GiB}
    storages.create({"metadata": {"name": NODE}, "spec": {"nodeName": NODE}})
    storages.patch_status(NODE, {"nodeStorageInfo": {"volumeGroups": [group]},
                                 "filteredStorageInfo": {"volumeGroups": [VG]}})  # fmt: skip
    agent = reconciler(resources, lvm, devices, resync_seconds=0.2)
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    cluster = ClusterBackend(resources, storages, timeout=5, recheck=0.5).start(sync_timeout=5)
    try:
        driver = ControllerDriver(cluster)
        capability = Capability("SINGLE_NODE_WRITER", AccessType.MOUNT)
        wanted = TopologyRequirement(preferred=({"topology.localcsi.io/node": NODE},))
        volume = driver.create_volume(CreateVolumeRequest("pvc-9", (capability,), GiB, 0, {}, None, wanted))
        assert (VG, volume.ref.lv) in lvm.lvs and volume.size_bytes == GiB
        time.sleep(0.5)  # a few resyncs: they read the cache and the shared lvs view only
        gets = [c for c in resources.calls if c == ("get", volume.ref.lv)]
        time.sleep(0.5)
        assert [c for c in resources.calls if c == ("get", volume.ref.lv)] == gets
        driver.delete_volume(volume.id)
        assert (VG, volume.ref.lv) not in lvm.lvs and resources.get(volume.ref.lv) is None
    finally:
        agent.lifecycle.should_exit.set()
        cluster.stop()
        resources.close()
        storages.close()
        runner.join(timeout=5)
    assert not runner.is_alive()


def test_a_refused_expansion_keeps_the_volume_ready_and_reports_why_until_it_succeeds(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    name = create(resources, plan())
    agent.reconcile(name)
    resources.patch(name, {"spec": {"size": 3 * GiB}})
    grow = lvm.extend_lv

    def full(vg: str, name: str, size_bytes: int) -> None:
        raise ResourceExhausted("not enough free space: 1 GiB free")

    lvm.extend_lv = full  # type: ignore[method-assign]
    with pytest.raises(_Retry):
        agent.reconcile(name)
    status = llv.status(obj(resources, name))
    assert (status["phase"], status["code"], status["observedGeneration"]) == ("Ready", "ResourceExhausted", 2)
    assert status["currentSize"] == GiB
    lvm.extend_lv = grow  # type: ignore[method-assign]
    agent.reconcile(name)
    status = llv.status(obj(resources, name))
    assert "code" not in status and status["currentSize"] == 3 * GiB


def test_provisioning_is_timed_once_and_failures_counted_for_metrics(
    agent: LogicalVolumeReconciler, resources: FakeResources, lvm: FakeLvm
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"node": NODE, **labels}) or 0.0

    timed = sample("localcsi_logicalvolume_provisioning_seconds_count", kind="Volume")
    failed = sample("localcsi_logicalvolume_failures_total", kind="Volume", code="InvalidArgument")
    stranger = plan("someone-else")
    lvm.add(LogicalVolume(VG, volume_lv_name("pvc-2"), GiB, "-wi-a-----", layout=("linear",), tags=stranger.tags()))
    name = create(resources, plan())
    agent.reconcile(name)
    agent.reconcile(name)  # already Ready: not timed again
    assert sample("localcsi_logicalvolume_provisioning_seconds_count", kind="Volume") == timed + 1
    agent.reconcile(create(resources, plan("pvc-2")))
    assert sample("localcsi_logicalvolume_failures_total", kind="Volume", code="InvalidArgument") == failed + 1
    assert sample("localcsi_logicalvolume_provisioning_seconds_count", kind="Volume") == timed + 1
