"""Generated NodeLocalStorage, NodeLocalStorageInitConfig and LogicalVolume objects against the real apiserver.

Strategies: ``localcsi.testing.cr_fuzz`` (the CRD schemas' shapes with hostile values). Every object is
created as admin. One the CRD refuses must get 422 and leave nothing behind. One it admits is handed,
as the apiserver returned it, to what localcsi runs on it:

- NodeLocalStorageInitConfig: the real ``localcsi controller`` process, as its service account, over
  four Nodes. Each admitted spec is also applied as the selected config (``localcsi``); the controller
  must then write every Node's NodeLocalStorage from it (or report ``SyncFailed``) and a status for
  that generation, and every other config gets ``NotSelected``. At the end the same pid still runs
  and answers ``/healthz``.
- NodeLocalStorage: in-process, the agent's cycle minus its commands: ``parse_spec``,
  ``parse_mount_points_to_init``, ``devices_to_probe`` and ``plan_vg_init`` over a synthetic inventory,
  then ``build_status``, written through ``/status`` as the agent's service account: the apiserver
  must accept the status the agent builds. The real agent process needs lsblk, findmnt and lvm2 on
  real disks, that is the node VM, which would not fit CI's minute.
- LogicalVolume: in-process, the agent's real ``LogicalVolumeReconciler.reconcile`` with the real
  apiserver (the agent's service account) and ``LocalLvmBackend`` over an in-memory lvm2
  (``testing/fake_lvm.py``); Device and MountPoint volumes get a runner whose every command fails.
  Then the object is deleted and reconciled again, which must release the finalizer.

Any exception but a CoreError turned into status (or a retry) fails the test. CI runs
``LOCALCSI_CR_FUZZ_EXAMPLES`` (default 150) examples per kind, derandomized; set it for a longer run
with new examples.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from localcsi.agent.lv_reconciler import LogicalVolumeReconciler, _Retry
from localcsi.core.initconfig import contains, invalid_entries, node_spec
from localcsi.k8s import errors as kube
from localcsi.k8s.resources import (
    LOGICAL_VOLUME,
    NODE_LOCAL_STORAGE,
    NODE_LOCAL_STORAGE_INIT_CONFIG,
    CustomResources,
    Kind,
)
from localcsi.resources import logicalvolume as llv
from localcsi.testing import cr_fuzz
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.cluster_access import SYSTEM_NAMESPACE, service_account_user
from localcsi.testing.cr_fuzz_agent import FailingRunner, agent_handles_storage, fake_lvm_backend
from localcsi.testing.vm import free_port
from localcsi.testing.waiting import wait_for

Obj = dict[str, Any]

EXAMPLES = int(os.environ.get("LOCALCSI_CR_FUZZ_EXAMPLES", "150"))
SELECTED = "localcsi"  # the controller's --init-config
NODE_PREFIX = "crfz"


def fuzz_settings(function: Callable[..., None]) -> Callable[..., None]:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize="LOCALCSI_CR_FUZZ_EXAMPLES" not in os.environ,
        suppress_health_check=list(HealthCheck),
    )(function)


class Tally:
    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def line(self) -> str:
        kinds = sorted({kind for kind, _ in self.counts})
        parts = [f"{kind}: {self.counts[kind, 'admitted']} admitted, {self.counts[kind, 'rejected']} rejected"
                 for kind in kinds]  # fmt: skip
        return "; ".join(parts)


TALLY = Tally()


def submit(admin: CustomResources, body: Obj) -> Obj | None:
    """Create ``body``; the stored object, or None when the CRD refused it (422, nothing stored)."""
    name = body["metadata"]["name"]
    try:
        created = admin.create(body)
    except kube.Invalid:
        TALLY.counts[admin.kind.kind, "rejected"] += 1
        if name and "/" not in name:
            assert admin.get(name) is None, f"a refused {admin.kind.kind} {name!r} was stored"
        return None
    except kube.KubeError as error:
        raise AssertionError(f"{admin.kind.kind} {json.dumps(body)[:2000]}: {error.status}, not 201 or 422") from error
    TALLY.counts[admin.kind.kind, "admitted"] += 1
    return created


class Controller:
    def __init__(self, cluster: KubeCluster, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "controller.log"
        kubeconfig = cluster.kubeconfig(service_account_user("localcsi-controller"))
        argv = [sys.executable, "-m", "localcsi", "controller", "--kubeconfig", str(kubeconfig),
                "--lease-namespace", SYSTEM_NAMESPACE, "--lease-name", f"localcsi-controller-{NODE_PREFIX}",
                "--metrics-address", f"127.0.0.1:{self.port}", "--log-format", "json"]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def healthz(self) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
            return int(response.status), response.read().decode()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


class World:
    def __init__(self, cluster: KubeCluster, workdir: Path) -> None:
        admin = cluster.kube_api()
        agent = cluster.kube_api(service_account_user("localcsi-agent"))
        self.admin = {kind.plural: CustomResources(admin, kind) for kind in
                      (NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG, LOGICAL_VOLUME)}  # fmt: skip
        self.agent_storages = CustomResources(agent, NODE_LOCAL_STORAGE)
        self.agent_volumes = CustomResources(agent, LOGICAL_VOLUME)
        self.cluster = cluster
        self.workdir = workdir
        self.nodes = {f"{NODE_PREFIX}-{suffix}": labels for suffix, labels in cr_fuzz.NODE_LABELS.items()}
        self.configs: list[str] = []  # fuzz-named init configs the apiserver admitted
        self.applied: list[Obj] = []  # admitted init config specs, for the selected config
        self.storages_before = {item["metadata"]["name"] for item in self.of(NODE_LOCAL_STORAGE).list()[0]}

    def of(self, kind: Kind) -> CustomResources:
        return self.admin[kind.plural]

    def cleanup(self) -> None:
        for name in [*self.configs, SELECTED]:
            self.of(NODE_LOCAL_STORAGE_INIT_CONFIG).delete(name)
        for name in self.nodes:
            self.cluster.delete_node(name)
        for item in self.of(NODE_LOCAL_STORAGE).list()[0]:
            if item["metadata"]["name"] not in self.storages_before:
                self.of(NODE_LOCAL_STORAGE).delete(item["metadata"]["name"])


@pytest.fixture(scope="module")
def world(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(kube_cluster, tmp_path_factory.mktemp("cr-fuzz"))
    try:
        yield made
    finally:
        made.cleanup()
        print(f"\n[cr-fuzz] {EXAMPLES} examples per kind; {TALLY.line()}")


# -- NodeLocalStorage: the agent's handling ---------------------------------------------------------


def test_admitted_node_local_storages_are_planned_and_reported_by_the_agent(world: World) -> None:
    storages = world.of(NODE_LOCAL_STORAGE)
    outcomes: collections.Counter[str] = collections.Counter()

    @fuzz_settings
    @given(body=cr_fuzz.node_local_storage())
    def fuzz(body: Obj) -> None:
        stored = submit(storages, body)
        if stored is None:
            return
        name = stored["metadata"]["name"]
        try:
            status = agent_handles_storage(stored)  # raises on anything but a plan
            initialized = next(c for c in status["conditions"] if c["type"] == "VolumeGroupsInitialized")
            outcomes[initialized["reason"]] += 1
            try:
                written = world.agent_storages.patch_status(name, status)
            except kube.Invalid as error:
                raise AssertionError(
                    f"the apiserver refused the status the agent built for {stored}: {error}"
                ) from None
            assert written["status"]["conditions"] == status["conditions"]
        finally:
            storages.delete(name)
        assert storages.get(name) is None

    fuzz()
    print(f"\n[cr-fuzz] NodeLocalStorage VolumeGroupsInitialized reasons: {dict(outcomes)}")
    assert TALLY.counts["NodeLocalStorage", "admitted"] > 0 and TALLY.counts["NodeLocalStorage", "rejected"] > 0


# -- LogicalVolume: the agent's reconciler ----------------------------------------------------------


def test_admitted_logical_volumes_are_reconciled_and_deleted_by_the_agent(world: World) -> None:
    volumes = world.of(LOGICAL_VOLUME)
    backend = fake_lvm_backend(cr_fuzz.FUZZ_NODE)
    reconciler = LogicalVolumeReconciler(
        None, cr_fuzz.FUZZ_NODE, FailingRunner(), Life(), resources=world.agent_volumes, backend=backend
    )
    phases: collections.Counter[str] = collections.Counter()

    def reconcile(name: str) -> str:
        try:
            reconciler.reconcile(name)
        except (_Retry, kube.Conflict):
            return "retry"
        return "done"

    labels = {"localcsi.io/node": cr_fuzz.FUZZ_NODE}
    spec = cr_fuzz.SHAPES["linear"](cr_fuzz.SOURCE_VOLUME)
    source = submit(volumes, {"metadata": {"name": cr_fuzz.SOURCE_VOLUME, "labels": labels}, "spec": spec})
    assert source is not None and reconcile(cr_fuzz.SOURCE_VOLUME) == "done"
    assert (volumes.get(cr_fuzz.SOURCE_VOLUME) or {}).get("status", {}).get("phase") == "Ready"

    @fuzz_settings
    @given(body=cr_fuzz.logical_volume())
    def fuzz(body: Obj) -> None:
        stored = submit(volumes, body)
        if stored is None:
            return
        name = stored["metadata"]["name"]
        try:
            outcome = reconcile(name)
            after = volumes.get(name) or {}
            status = after.get("status") or {}
            phase = status.get("phase", "untouched")
            phases[f"{phase}/{outcome}"] += 1
            if stored["spec"]["nodeName"] == cr_fuzz.FUZZ_NODE:
                assert phase in ("Ready", "Failed") or (outcome == "retry" and status.get("code")), after
                assert llv.FINALIZER in (after["metadata"].get("finalizers") or []) or phase == "Failed"
        finally:
            volumes.delete(name)
            gone = reconcile(name)  # the agent wipes the LV and releases its finalizer
        left = volumes.get(name)
        if left is not None:  # a refused deletion (FailingRunner: no Device or MountPoint tools): reported
            assert gone == "retry" and (left.get("status") or {}).get("code"), left
            phases["deletion refused"] += 1
            volumes.patch(name, {"metadata": {"finalizers": None}})
        wait_for(f"LogicalVolume {name} to go", lambda: volumes.get(name) is None, 10, 0.05)

    try:
        fuzz()
    finally:
        volumes.delete(cr_fuzz.SOURCE_VOLUME)
        reconcile(cr_fuzz.SOURCE_VOLUME)
    assert volumes.get(cr_fuzz.SOURCE_VOLUME) is None, "the source volume's finalizer was not released"
    print(f"\n[cr-fuzz] LogicalVolume phase/outcome: {dict(phases)}")
    assert TALLY.counts["LogicalVolume", "admitted"] > 0 and TALLY.counts["LogicalVolume", "rejected"] > 0


class Life:
    def __init__(self) -> None:
        self.should_exit = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self.should_exit.wait(timeout)


# -- NodeLocalStorageInitConfig: the controller process ---------------------------------------------


def _conditions(config: Obj | None) -> dict[str, Obj]:
    return {c["type"]: c for c in ((config or {}).get("status") or {}).get("conditions") or []}


def _apply_selected(world: World, spec: Obj) -> int:
    configs = world.of(NODE_LOCAL_STORAGE_INIT_CONFIG)
    current = configs.get(SELECTED)
    if current is None:
        stored = configs.create({"metadata": {"name": SELECTED}, "spec": spec})
    else:
        stored = configs.replace({**current, "spec": spec})
    return int(stored["metadata"]["generation"])


def _synced(world: World, spec: Obj, generation: int) -> str | None:
    conditions = _conditions(world.of(NODE_LOCAL_STORAGE_INIT_CONFIG).get(SELECTED))
    ready, selectors = conditions.get("Ready"), conditions.get("SelectorsValid")
    if ready is None or selectors is None or ready.get("observedGeneration") != generation:
        return None
    assert (selectors["status"] == "True") == (not invalid_entries(spec)), selectors
    if ready["status"] == "False":
        assert ready["reason"] == "SyncFailed" and ready["message"], ready
        return "SyncFailed"
    for node, labels in world.nodes.items():
        stored = world.of(NODE_LOCAL_STORAGE).get(node) or {}
        if not contains(stored.get("spec") or {}, node_spec(spec, node, labels).spec):
            return None
    return "Synced"


def test_admitted_init_configs_are_applied_or_reported_by_the_controller(world: World) -> None:
    configs = world.of(NODE_LOCAL_STORAGE_INIT_CONFIG)
    for node, labels in world.nodes.items():
        world.cluster.add_node(node, labels)
    controller = Controller(world.cluster, world.workdir)
    try:
        _run_init_configs(world, configs, controller)
    finally:
        code = controller.stop()
    assert code == 0, controller.log_text()


def _run_init_configs(world: World, configs: CustomResources, controller: Controller) -> None:
    @fuzz_settings
    @given(body=cr_fuzz.init_config())
    def fuzz(body: Obj) -> None:
        stored = submit(configs, body)
        if stored is not None:
            world.configs.append(stored["metadata"]["name"])
            world.applied.append(stored["spec"])

    fuzz()
    outcomes: collections.Counter[str] = collections.Counter()
    for spec in world.applied:
        generation = _apply_selected(world, spec)
        synced = functools.partial(_synced, world, spec, generation)
        outcomes[wait_for(f"the controller to apply generation {generation}", synced, 20, 0.05)] += 1
    for name in world.configs:
        ready = wait_for(f"init config {name}'s status", lambda: _conditions(configs.get(name)).get("Ready"), 20, 0.05)  # noqa: B023
        assert (ready["status"], ready["reason"]) == ("False", "NotSelected"), ready
    assert controller.proc.poll() is None, controller.log_text()
    assert controller.proc.pid == controller.pid
    assert controller.healthz()[0] == 200
    assert "Traceback" not in controller.log_path.read_text(errors="replace"), controller.log_text()
    print(f"\n[cr-fuzz] selected init config outcomes: {dict(outcomes)}")
    assert TALLY.counts["NodeLocalStorageInitConfig", "admitted"] > 0
    assert TALLY.counts["NodeLocalStorageInitConfig", "rejected"] > 0
