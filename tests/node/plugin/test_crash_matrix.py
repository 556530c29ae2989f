"""The crash matrix: the plugin killed with SIGKILL between every two lvm2 or filesystem steps of create,
expand, snapshot, restore, clone and delete, on thick and thin volumes, then restarted and the call
retried as the sidecars would. Each retry must converge: the expected LVs and no other (no duplicate,
no temporary, no orphan), the volume or snapshot ready, and the data equal to the source's.

Kills come from ``localcsi.testing.crash_points``: stand-ins for lvcreate, lvchange, lvextend,
lvconvert, lvremove and resize2fs, first on the plugin's PATH, with no hook in the plugin itself.
Stubs are taken from ``rig.plugin`` at each call, since a restart opens a new channel. The table of
steps is in docs/testing.md ("Crash matrix").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from localcsi.csi import csi_pb2
from localcsi.testing import crash_points
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import install_project, site_disk
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

pytestmark = pytest.mark.node

THICK_VG, THIN_VG, POOL = "localcsi-crash-thick", "localcsi-crash-thin", "pool0"
THICK = {"vgName": THICK_VG}
THIN = {"vgName": THIN_VG, "lvmType": "thin", "thinPool": POOL}
SIZE = 64 * MIB
COMMANDS = ("lvcreate", "lvchange", "lvextend", "lvconvert", "lvremove", "resize2fs")
BLOCK = req.block_capability()


@dataclass
class Rig:
    plugin: GuestPlugin
    thick: crash_points.Source
    thin: crash_points.Source

    @property
    def vm(self) -> NodeVM:
        return self.plugin.vm

    def lvs(self) -> set[str]:
        """Every LV in the two VGs (ours or not: a leftover temporary counts too), but the pool."""
        out = self.vm.check(["lvs", "--reportformat", "json", "-o", "vg_name,lv_name", THICK_VG, THIN_VG]).json()
        rows = out["report"][0]["lv"]
        return {f"{r['vg_name']}/{r['lv_name']}" for r in rows if not r["lv_name"].startswith(("pool0", "["))}

    def digest(self, volume_id: str, target: str) -> str:
        self.plugin.node.NodePublishVolume(req.publish(volume_id, target, BLOCK))
        try:
            return self.vm.check(["sha256sum", target]).stdout.split()[0]
        finally:
            self.plugin.node.NodeUnpublishVolume(req.unpublish(volume_id, target))


def lv_of(volume_id: str) -> str:
    return "/".join(volume_id.split("/")[1:])


def _source(plugin: GuestPlugin, name: str, params: dict[str, str]) -> crash_points.Source:
    volume = plugin.controller.CreateVolume(req.create_volume(name, SIZE, params, BLOCK)).volume
    target = f"/var/lib/localcsi-test/{name}"
    plugin.node.NodePublishVolume(req.publish(volume.volume_id, target, BLOCK))
    plugin.vm.check(["dd", "if=/dev/urandom", f"of={target}", "bs=1M", "count=64", "oflag=direct", "status=none"])
    digest = plugin.vm.check(["sha256sum", target]).stdout.split()[0]
    plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    snapshot = plugin.controller.CreateSnapshot(req.create_snapshot(volume.volume_id, f"{name}-snap")).snapshot
    return crash_points.Source(volume.volume_id, snapshot.snapshot_id, digest)


@pytest.fixture(scope="module")
def rig(vm_phases: Phases) -> Iterator[Rig]:
    vm = NodeVM(VMConfig(disks_gib=[2, 2], port_forwards={PLUGIN_TCP_PORT: 0}, site_disk=site_disk()), vm_phases)
    try:
        vm.start()
        install_project(vm)
        thick_disk, thin_disk = vm.data_disks()[:2]
        vm.check(["vgcreate", "-y", THICK_VG, thick_disk])
        vm.check(["vgcreate", "-y", THIN_VG, thin_disk])
        vm.check(["lvcreate", "-y", "--type", "thin-pool", "-L", "1g", "-n", POOL, THIN_VG])
        plugin = GuestPlugin(vm, env=crash_points.install(vm, COMMANDS)).start()
        yield Rig(plugin, _source(plugin, "src-thick", THICK), _source(plugin, "src-thin", THIN))
        plugin.stop()
    finally:
        vm.stop()


# -- the operations, each returning what its retry must leave ---------------------------------------


def _created(rig: Rig, request: csi_pb2.CreateVolumeRequest, digest: str | None) -> Callable[[], set[str]]:
    """A CreateVolume: call it (the crash), then the retry; one new LV, ready, with the expected data."""

    def retry() -> set[str]:
        volume = rig.plugin.controller.CreateVolume(request, timeout=300).volume
        if digest is not None:
            assert rig.digest(volume.volume_id, f"/var/lib/localcsi-test/{request.name}") == digest
        return {lv_of(volume.volume_id)}

    return retry


def _create_call(rig: Rig, request: csi_pb2.CreateVolumeRequest) -> Callable[[], object]:
    return lambda: rig.plugin.controller.CreateVolume(request, timeout=300)


@dataclass(frozen=True)
class Case:
    operation: str
    command: str
    matching: str = ""

    @property
    def id(self) -> str:
        return f"{self.operation}@{self.command}{'(' + self.matching.strip('-') + ')' if self.matching else ''}"


CASES = [
    Case("create-thick", "lvcreate"),
    Case("create-thin", "lvcreate"),
    Case("expand-thick", "lvextend"),
    Case("node-expand", "resize2fs"),
    Case("snapshot-thick", "lvcreate"),
    Case("snapshot-thin", "lvcreate"),
    Case("restore-thick", "lvcreate"),
    Case("restore-thick", "lvchange", "--deltag"),
    Case("restore-thin", "lvcreate"),
    Case("restore-thin", "lvchange", "--deltag"),
    Case("clone-thick", "lvcreate", "--snapshot"),
    Case("clone-thick", "lvconvert", "--splitsnapshot"),
    Case("clone-thick", "lvremove", "clone-"),
    Case("clone-thick", "lvchange", "--deltag"),
    Case("delete-thick", "lvremove"),
    Case("delete-thin", "lvremove"),
    Case("delete-snapshot-thick", "lvconvert", "--splitsnapshot"),
    Case("delete-snapshot-thick", "lvremove"),
]


def _plan(rig: Rig, case: Case, name: str) -> tuple[Callable[[], object], Callable[[], set[str]]]:
    """The call to crash, and the retry, which returns the LVs it leaves besides the ones before."""
    match case.operation:
        case "create-thick" | "create-thin":
            request = req.create_volume(name, SIZE, THICK if case.operation == "create-thick" else THIN, BLOCK)
            return _create_call(rig, request), _created(rig, request, None)
        case "restore-thick" | "restore-thin":
            source = rig.thick if case.operation == "restore-thick" else rig.thin
            params = THICK if source is rig.thick else THIN
            request = req.create_volume(name, SIZE, params, BLOCK, req.snapshot_source(source.snapshot_id))
            return lambda: rig.plugin.controller.CreateVolume(request, timeout=300), _created(
                rig, request, source.digest
            )
        case "clone-thick":
            request = req.create_volume(name, SIZE, THICK, BLOCK, req.volume_source(rig.thick.volume_id))
            return lambda: rig.plugin.controller.CreateVolume(request, timeout=300), _created(
                rig, request, rig.thick.digest
            )
        case "snapshot-thick" | "snapshot-thin":
            source = rig.thick if case.operation == "snapshot-thick" else rig.thin
            snap = req.create_snapshot(source.volume_id, name)

            def snapshot_retry() -> set[str]:
                snapshot = rig.plugin.controller.CreateSnapshot(snap, timeout=300).snapshot
                assert snapshot.ready_to_use
                restored = req.create_volume(f"{name}-r", SIZE, THICK, BLOCK, req.snapshot_source(snapshot.snapshot_id))
                volume = rig.plugin.controller.CreateVolume(restored, timeout=300).volume
                assert rig.digest(volume.volume_id, f"/var/lib/localcsi-test/{name}-r") == source.digest
                rig.plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
                return {lv_of(snapshot.snapshot_id)}

            return lambda: rig.plugin.controller.CreateSnapshot(snap), snapshot_retry
        case "delete-thick" | "delete-thin" | "delete-snapshot-thick":
            return _delete_plan(rig, case, name)
        case "expand-thick" | "node-expand":
            return _expand_plan(rig, case, name)
    raise AssertionError(f"no plan for {case.operation}")


def _delete_plan(rig: Rig, case: Case, name: str) -> tuple[Callable[[], object], Callable[[], set[str]]]:
    params = THIN if case.operation == "delete-thin" else THICK
    volume = rig.plugin.controller.CreateVolume(req.create_volume(name, SIZE, params, BLOCK)).volume
    if case.operation == "delete-snapshot-thick":
        snapshot = rig.plugin.controller.CreateSnapshot(req.create_snapshot(volume.volume_id, f"{name}-snap")).snapshot
        delete_snapshot = csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id)

        def snapshot_gone() -> set[str]:
            rig.plugin.controller.DeleteSnapshot(delete_snapshot, timeout=300)
            return {lv_of(volume.volume_id)}  # the volume stays

        return lambda: rig.plugin.controller.DeleteSnapshot(delete_snapshot), snapshot_gone
    delete = csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)

    def gone() -> set[str]:
        rig.plugin.controller.DeleteVolume(delete, timeout=300)
        return set()

    return lambda: rig.plugin.controller.DeleteVolume(delete), gone


def _expand_plan(rig: Rig, case: Case, name: str) -> tuple[Callable[[], object], Callable[[], set[str]]]:
    volume = rig.plugin.controller.CreateVolume(req.create_volume(name, SIZE, THICK)).volume
    target = f"/var/lib/localcsi-test/{name}"
    rig.plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    rig.vm.check(["dd", "if=/dev/urandom", f"of={target}/data", "bs=1M", "count=8", "conv=fsync", "status=none"])
    digest = rig.vm.check(["sha256sum", f"{target}/data"]).stdout.split()[0]
    grow = req.expand(volume.volume_id, 2 * SIZE)
    node_grow = req.node_expand(volume.volume_id, target, 2 * SIZE)

    def grown() -> set[str]:
        if case.operation == "expand-thick":
            assert rig.plugin.controller.ControllerExpandVolume(grow, timeout=300).capacity_bytes == 2 * SIZE
        assert rig.plugin.node.NodeExpandVolume(node_grow, timeout=300).capacity_bytes == 2 * SIZE
        size = int(rig.vm.check(["df", "-B1", "--output=size", target]).stdout.split()[1])
        assert size > 1.5 * SIZE, f"the filesystem did not grow: {size}"
        assert rig.vm.check(["sha256sum", f"{target}/data"]).stdout.split()[0] == digest
        rig.plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
        return {lv_of(volume.volume_id)}

    if case.operation == "expand-thick":
        return lambda: rig.plugin.controller.ControllerExpandVolume(grow), grown
    rig.plugin.controller.ControllerExpandVolume(grow)
    return lambda: rig.plugin.node.NodeExpandVolume(node_grow), grown


# CI runs one step of each operation, the one with the most state behind it (about 35 s a case under
# TCG); LOCALCSI_CRASH_CASES=all runs every step of the table (docs/testing.md, "Crash matrix").
CI_CASES = {
    "create-thick@lvcreate",
    "create-thin@lvcreate",
    "expand-thick@lvextend",
    "node-expand@resize2fs",
    "snapshot-thin@lvcreate",
    "restore-thick@lvchange(deltag)",
    "clone-thick@lvconvert(splitsnapshot)",
    "delete-thin@lvremove",
    "delete-snapshot-thick@lvconvert(splitsnapshot)",
}
RUN_CASES = CASES if os.environ.get("LOCALCSI_CRASH_CASES") == "all" else [c for c in CASES if c.id in CI_CASES]


def test_every_ci_case_is_in_the_table() -> None:
    assert {case.id for case in CASES} >= CI_CASES


@pytest.mark.parametrize("case", RUN_CASES, ids=[case.id for case in RUN_CASES])
def test_a_kill_at_each_step_then_a_retry_converges(rig: Rig, case: Case) -> None:
    name = f"crash-{case.id.replace('@', '-').replace('(', '-').replace(')', '')}"
    before = rig.lvs()
    call, retry = _plan(rig, case, name)
    prepared = rig.lvs()
    crash_points.crash_at(rig.plugin, case.command, call, case.matching)
    left = retry()
    expected = (before | left) if case.operation.startswith("delete") else (prepared | left)
    assert rig.lvs() == expected, f"after the retry: {sorted(rig.lvs() ^ expected)} differ from what is expected"
