"""The agent's crash matrix in cluster mode: `localcsi agent` in the node VM killed with SIGKILL between
two lvm2 steps of create (thick and thin), ControllerExpandVolume, snapshot, restore, clone and
delete, then started again, and the CSI call retried as a sidecar would (``call_retrying``) against
the cluster-mode controller on the host. Each retry must converge (``testing/agent_crash.py``): the
expected LVs and no other, no orphan, every LogicalVolume Ready with its LV, and the data equal.

Kills come from ``localcsi.testing.crash_points``: stand-ins for lvcreate, lvchange, lvextend,
lvconvert, lvremove and lvs first on the agent's PATH, no hook in the agent. An ``lvs`` of the new LV
is the first command after its lvcreate (or lvextend): a kill there leaves the LV made and its
LogicalVolume not yet Ready, a gap the standalone plugin's matrix does not have. The table of steps,
with their outcomes and times, is in docs/testing.md ("Crash matrix").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from localcsi.agent.status import REASON_ORPHAN
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.csi import csi_pb2
from localcsi.driver.backend import CREATING_TAG
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources
from localcsi.resources import logicalvolume as llv
from localcsi.testing import agent_crash, crash_points
from localcsi.testing import csi_requests as req
from localcsi.testing.cluster import KubeCluster, cluster_mode_controller
from localcsi.testing.csi_requests import MIB
from localcsi.testing.sidecar_calls import call_retrying
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig
from localcsi.testing.waiting import wait_for

pytestmark = pytest.mark.cluster

NODE = "node-agent-crash"
THICK_VG, THIN_VG, POOL = "localcsi-acrash-thick", "localcsi-acrash-thin", "pool0"
VGS = (THICK_VG, THIN_VG)
THICK = {"vgName": THICK_VG}
THIN = {"vgName": THIN_VG, "lvmType": "thin", "thinPool": POOL}
SIZE = 64 * MIB
COMMANDS = ("lvcreate", "lvchange", "lvextend", "lvconvert", "lvremove", "lvs")
BLOCK = req.block_capability()
OPERATION_TIMEOUT = 20.0  # the controller's wait for the agent; the sidecar's retry waits again
FIRST_CALL = 2.0  # the call the kill interrupts: its answer (DEADLINE_EXCEEDED) is not awaited
TOPOLOGY = csi_pb2.TopologyRequirement(
    requisite=[csi_pb2.Topology(segments={"topology.localcsi.io/node": NODE})],
    preferred=[csi_pb2.Topology(segments={"topology.localcsi.io/node": NODE})],
)


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[3, 2], host_loopback=True)


@dataclass
class Rig:
    vm: NodeVM
    agent: agent_crash.CrashAgent
    controller: Any
    resources: CustomResources
    cluster: KubeCluster
    sources: dict[str, crash_points.Source]

    def lvs(self) -> set[str]:
        return agent_crash.visible(agent_crash.guest_lvs(self.vm, VGS), (POOL,))

    def create(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.Volume:
        request.accessibility_requirements.CopyFrom(TOPOLOGY)
        response: csi_pb2.CreateVolumeResponse = call_retrying(self.controller.CreateVolume, request)
        return response.volume

    def digest(self, object_id: str, size: int = SIZE) -> str:
        _, vg, lv = object_id.split("/")
        return agent_crash.digest(self.vm, vg, lv, size)

    def orphan_events(self) -> list[str]:
        events = client.CoreV1Api(self.cluster.api_client()).list_namespaced_event("default").items
        return [e.message or "" for e in events if e.reason == REASON_ORPHAN and e.involved_object.name == NODE]


def lv_of(object_id: str) -> str:
    return "/".join(object_id.split("/")[1:])


@pytest.fixture(scope="module")
def rig(installed_vm: NodeVM, kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    vm = installed_vm
    thick_disk, thin_disk = vm.data_disks()[:2]
    vm.check(["vgcreate", "-y", THICK_VG, thick_disk])
    vm.check(["vgcreate", "-y", THIN_VG, thin_disk])
    vm.check(["lvcreate", "-y", "--type", "thin-pool", "-L", "1g", "-n", POOL, THIN_VG])
    kube_cluster.add_node(NODE)
    storages = CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE)
    listing = {"vgs": {"include": [f"^{THICK_VG}$", f"^{THIN_VG}$"]}}
    storages.create({"metadata": {"name": NODE}, "spec": {"nodeName": NODE, "listConfig": listing}})
    resources = CustomResources(kube_cluster.kube_api(), LOGICAL_VOLUME)
    agent = agent_crash.CrashAgent(vm, kube_cluster, NODE, COMMANDS)
    socket = tmp_path_factory.mktemp("csi") / "csi.sock"
    try:
        agent.start()

        def reported() -> bool:  # placement reads the VGs and the pool from the agent's report
            status = (storages.get(NODE) or {}).get("status") or {}
            groups = (status.get("nodeStorageInfo") or {}).get("volumeGroups") or []
            return {g.get("name") for g in groups if g.get("thinPools") or g.get("name") == THICK_VG} >= set(VGS)

        wait_for("the agent's report of both VGs and the pool", reported, 300, 1.0, agent.logs)
        with cluster_mode_controller(kube_cluster, socket, operation_timeout=OPERATION_TIMEOUT) as controller:
            rig = Rig(vm, agent, controller, resources, kube_cluster, {})
            started = time.monotonic()
            for kind, params in (("thick", THICK), ("thin", THIN)):
                rig.sources[kind] = _source(rig, f"src-{kind}", params)
            print(f"\n[agent crash] sources: {time.monotonic() - started:.1f}s")
            yield rig
    finally:
        if agent.pid is not None:
            agent.kill()  # the VM goes with the module: no need to wait for a clean stop
        # The VM goes with the module; the session's apiserver stays: leave no LogicalVolume behind.
        for obj in resources.list(llv.node_selector(NODE))[0]:
            resources.patch(llv.name(obj), {"metadata": {"finalizers": []}})
            resources.delete(llv.name(obj))
        storages.delete(NODE)
        kube_cluster.delete_node(NODE)


def _source(rig: Rig, name: str, params: dict[str, str]) -> crash_points.Source:
    volume = rig.create(req.create_volume(name, SIZE, params, BLOCK))
    device = f"/dev/{lv_of(volume.volume_id)}"
    rig.vm.check(["dd", "if=/dev/urandom", f"of={device}", "bs=1M", f"count={SIZE // MIB}", "oflag=direct",
                  "status=none"], timeout=600)  # fmt: skip
    snap = call_retrying(rig.controller.CreateSnapshot, req.create_snapshot(volume.volume_id, f"{name}-snap")).snapshot
    return crash_points.Source(volume.volume_id, snap.snapshot_id, rig.digest(volume.volume_id))


@dataclass(frozen=True)
class Case:
    operation: str
    command: str
    found: str  # what the kill leaves (see _found): the resource's phase, and the LVs made since the call
    matching: str = ""  # an argv substring; "{lv}" stands for the LV the operation makes
    skip: int = 0

    @property
    def id(self) -> str:
        shown = self.matching.replace("{lv}", "lv").strip("-")
        nth = f"#{self.skip + 1}" if self.skip else ""
        return f"{self.operation}@{self.command}{'(' + shown + ')' if shown else ''}{nth}"


NOTHING, MADE, FILLING = "Creating; new: -", "Creating; new: lv", "Creating; new: lv(creating)"
CASES = [
    Case("create-thick", "lvcreate", NOTHING),
    Case("create-thick", "lvs", MADE, "{lv}"),
    Case("create-thin", "lvcreate", NOTHING),
    Case("expand-thick", "lvextend", "Ready, lv 64 MiB; new: -"),
    Case("expand-thick", "lvs", "Ready, lv 128 MiB; new: -", "{lv}", skip=1),
    Case("snapshot-thick", "lvcreate", NOTHING),
    Case("snapshot-thin", "lvcreate", NOTHING),
    Case("snapshot-thin", "lvs", MADE, "{lv}"),
    Case("restore-thick", "lvcreate", NOTHING),
    Case("restore-thick", "lvchange", FILLING, "--deltag"),
    Case("restore-thin", "lvcreate", NOTHING),
    Case("restore-thin", "lvchange", FILLING, "--deltag"),
    Case("clone-thick", "lvcreate", FILLING, "--snapshot"),
    Case("clone-thick", "lvconvert", "Creating; new: clone-temporary, lv(creating)", "--splitsnapshot"),
    Case("clone-thick", "lvremove", "Creating; new: clone-temporary, lv(creating)", "clone-"),
    Case("clone-thick", "lvchange", FILLING, "--deltag"),
    Case("delete-thick", "lvremove", "Deleting; new: -"),
    Case("delete-thin", "lvremove", "Deleting; new: -"),
    Case("delete-snapshot-thick", "lvconvert", "Deleting; new: -", "--splitsnapshot"),
    Case("delete-snapshot-thick", "lvremove", "Deleting; new: -"),
]

Plan = tuple[str, Callable[[], object], Callable[[], set[str]]]  # the LV named by {lv}, the call, its retry


def _create_plan(rig: Rig, case: Case, name: str) -> Plan:
    kind = case.operation.split("-")[1]
    params = THICK if kind == "thick" else THIN
    source = rig.sources[kind]
    content = {
        "create": None,
        "restore": req.snapshot_source(source.snapshot_id),
        "clone": req.volume_source(source.volume_id),
    }[case.operation.split("-")[0]]
    request = req.create_volume(name, SIZE, params, BLOCK, content)
    request.accessibility_requirements.CopyFrom(TOPOLOGY)
    lv = f"{params['vgName']}/{volume_lv_name(name)}"

    def retry() -> set[str]:
        volume = rig.create(request)
        assert volume.volume_id == f"{NODE}/{lv}" and volume.capacity_bytes == SIZE
        if content is not None:
            assert rig.digest(volume.volume_id) == source.digest, "the new volume's data differ from the source's"
        return {lv}

    return lv, lambda: rig.controller.CreateVolume(request, timeout=FIRST_CALL), retry


def _snapshot_plan(rig: Rig, case: Case, name: str) -> Plan:
    source = rig.sources[case.operation.split("-")[1]]
    request = req.create_snapshot(source.volume_id, name)
    lv = f"{source.volume_id.split('/')[1]}/{snapshot_lv_name(name)}"

    def retry() -> set[str]:
        snapshot = call_retrying(rig.controller.CreateSnapshot, request).snapshot
        assert snapshot.ready_to_use and snapshot.snapshot_id == f"{NODE}/{lv}"
        assert rig.digest(snapshot.snapshot_id) == source.digest, "the snapshot's data differ from its source's"
        return {lv}

    return lv, lambda: rig.controller.CreateSnapshot(request, timeout=FIRST_CALL), retry


def _expand_plan(rig: Rig, case: Case, name: str) -> Plan:
    volume = rig.create(req.create_volume(name, SIZE, THICK, BLOCK))
    lv = lv_of(volume.volume_id)
    rig.vm.check(["dd", "if=/dev/urandom", f"of=/dev/{lv}", "bs=1M", "count=8", "oflag=direct", "status=none"])
    before = rig.digest(volume.volume_id)
    grow = req.expand(volume.volume_id, 2 * SIZE)

    def retry() -> set[str]:
        assert call_retrying(rig.controller.ControllerExpandVolume, grow).capacity_bytes == 2 * SIZE
        [row] = [one for one in agent_crash.guest_lvs(rig.vm, VGS) if f"{one.vg}/{one.name}" == lv]
        assert row.size_bytes == 2 * SIZE, f"lvs shows {row.size_bytes} bytes"
        obj = rig.resources.get(lv.split("/")[1])
        assert obj is not None and llv.status(obj).get("currentSize") == 2 * SIZE, llv.status(obj or {})
        assert rig.digest(volume.volume_id) == before, "the data changed in the expansion"
        return {lv}

    return lv, lambda: rig.controller.ControllerExpandVolume(grow, timeout=FIRST_CALL), retry


def _delete_plan(rig: Rig, case: Case, name: str) -> Plan:
    params = THIN if case.operation == "delete-thin" else THICK
    volume = rig.create(req.create_volume(name, SIZE, params, BLOCK))
    request: csi_pb2.DeleteSnapshotRequest | csi_pb2.DeleteVolumeRequest
    if case.operation == "delete-snapshot-thick":
        snap = call_retrying(rig.controller.CreateSnapshot, req.create_snapshot(volume.volume_id, f"{name}-s")).snapshot
        removed, stays = snap.snapshot_id, {lv_of(volume.volume_id)}
        method, request = rig.controller.DeleteSnapshot, csi_pb2.DeleteSnapshotRequest(snapshot_id=removed)
    else:
        removed, stays = volume.volume_id, set()
        method, request = rig.controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=removed)

    def retry() -> set[str]:
        call_retrying(method, request)
        assert rig.resources.get(removed.split("/")[2]) is None, "the LogicalVolume outlived its delete"
        return stays

    return lv_of(removed), lambda: method(request, timeout=FIRST_CALL), retry


def _plan(rig: Rig, case: Case, name: str) -> Plan:
    operation = case.operation.split("-")[0]
    plans = {"create": _create_plan, "restore": _create_plan, "clone": _create_plan, "snapshot": _snapshot_plan,
             "expand": _expand_plan, "delete": _delete_plan}  # fmt: skip
    return plans[operation](rig, case, name)


# CI runs one step of each operation, the one with the most state behind it; LOCALCSI_CRASH_CASES=all
# runs every step of the table (docs/testing.md, "Crash matrix", with the measured times).
CI_CASES = {
    "create-thick@lvs(lv)",
    "expand-thick@lvextend",
    "snapshot-thin@lvs(lv)",
    "restore-thick@lvchange(deltag)",
    "clone-thick@lvremove(clone)",
    "delete-thin@lvremove",
}
ALL = os.environ.get("LOCALCSI_CRASH_CASES") == "all"
RUN_CASES = CASES if ALL else [case for case in CASES if case.id in CI_CASES]


def test_every_ci_case_is_in_the_table() -> None:
    assert {case.id for case in CASES} >= CI_CASES
    if not ALL:
        print(f"\n[agent crash] {len(RUN_CASES)} of {len(CASES)} cases (CI_CASES); LOCALCSI_CRASH_CASES=all runs all")


def _found(rig: Rig, prepared: set[str], lv: str) -> str:
    """What the kill left: the resource's phase (and its LV's size once Ready), the LVs made since the
    call (``lv``: the one the operation makes, ``(creating)``: tagged as being filled), and any gone."""
    lvs = {f"{one.vg}/{one.name}": one for one in agent_crash.guest_lvs(rig.vm, VGS)}
    now = agent_crash.visible(lvs.values(), (POOL,))

    def role(full: str) -> str:
        name = "lv" if full == lv else "clone-temporary" if full.split("/")[1].startswith("clone-") else full
        return name + ("(creating)" if full in lvs and CREATING_TAG in lvs[full].tags else "")

    obj = rig.resources.get(lv.split("/")[1])
    phase = (llv.status(obj).get("phase") or "no status") if obj is not None else "no resource"
    if phase == "Ready" and lv in lvs:
        phase += f", lv {lvs[lv].size_bytes // MIB} MiB"
    gone = f"; gone: {', '.join(sorted(map(role, prepared - now)))}" if prepared - now else ""
    return f"{phase}; new: {', '.join(sorted(map(role, now - prepared))) or '-'}{gone}"


@pytest.mark.parametrize("case", RUN_CASES, ids=[case.id for case in RUN_CASES])
def test_a_kill_of_the_agent_at_each_step_then_a_retry_converges(rig: Rig, case: Case) -> None:
    name = f"acrash-{case.id.replace('@', '-').replace('(', '-').replace(')', '').replace('#', '-')}"
    if not rig.agent.alive():  # an earlier case failed between its kill and the restart
        print("\n[agent crash] the agent is down after an earlier failure: starting it")
        rig.agent.start()
    started = time.monotonic()
    before = rig.lvs()
    lv, call, retry = _plan(rig, case, name)
    prepared = rig.lvs()
    killed_at = time.monotonic()
    found: list[str] = []
    crash_points.crash_at(
        rig.agent,
        case.command,
        call,
        case.matching.replace("{lv}", lv),
        skip=case.skip,
        within=agent_crash.START_TIMEOUT,
        on_dead=lambda: found.append(_found(rig, prepared, lv)),
    )
    retried_at = time.monotonic()
    assert found == [case.found], f"the kill left {found}, not {case.found!r}: not killed at the step meant"
    left = retry()
    expected = (before | left) if case.operation.startswith("delete") else (prepared | left)
    agent_crash.assert_converged(rig.vm, rig.resources, NODE, VGS, pools=(POOL,), expected=expected)
    assert not rig.orphan_events(), f"the agent reported orphans: {rig.orphan_events()}"
    done = time.monotonic()
    print(
        f"\n[agent crash] {case.id}: {done - started:.1f}s (prepare {killed_at - started:.1f}s, kill and restart "
        f"{retried_at - killed_at:.1f}s of which start {rig.agent.start_seconds[-1]:.1f}s, retry and checks "
        f"{done - retried_at:.1f}s); at the kill: {found[0]}"
    )


def test_the_sources_are_intact_after_every_kill(rig: Rig) -> None:
    for kind, source in rig.sources.items():
        assert rig.digest(source.volume_id) == source.digest, f"the {kind} source's data changed"
        assert rig.digest(source.snapshot_id) == source.digest, f"the {kind} source's snapshot changed"
    names = {lv_of(source.volume_id) for source in rig.sources.values()}
    names |= {lv_of(source.snapshot_id) for source in rig.sources.values()}
    assert names <= rig.lvs()
