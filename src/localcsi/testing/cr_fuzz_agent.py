"""What the agent does with a NodeLocalStorage and a LogicalVolume, without a node: for the CR fuzzer.

``agent_handles_storage`` is the agent's cycle (agent/cycle.py) minus its commands: the spec parsed,
VG initialisation planned over a synthetic inventory, and the status built as the agent would write
it. ``fake_lvm_backend`` is the LocalLvmBackend the agent's LogicalVolume reconciler runs, over an
in-memory lvm2. Every command of ``FailingRunner`` fails, as on a node whose tools are broken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from localcsi.core.model import PhysicalVolume, VolumeGroup
from localcsi.core.mountpoint_init import parse_mount_points_to_init
from localcsi.core.nodestorage import DEFAULT_DEVICE_PATTERNS, BlockDevice, MountedFilesystem, NodeInventory, parse_spec
from localcsi.core.nodestorage_init import devices_to_probe, plan_vg_init
from localcsi.core.nodestorage_status import (
    build_status,
    discovered_condition,
    init_condition,
    offered_devices,
    scoped_devices,
)
from localcsi.core.sizes import GiB
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.lvm.runner import CommandFailed, CommandResult
from localcsi.testing.fake_lvm import EXTENT, FakeDevices, FakeLvm, pool, vg

FS_UUID = "0f3c1a2b-4d5e-6f70-8192-a3b4c5d6e7f8"
NOW = "2026-01-01T00:00:00Z"


def _disk(name: str, **changes: Any) -> BlockDevice:
    values: dict[str, Any] = {"name": name, "path": f"/dev/{name}", "size_bytes": 10 * GiB, "type": "disk",
                              "rotational": False, "read_only": False}  # fmt: skip
    values.update(changes)
    return BlockDevice(**values)


def synthetic_inventory() -> NodeInventory:
    """A node with a blank disk, a partitioned one whose partition is a PV, a mounted one, a free PV,
    a blank NVMe namespace, a read-only disk and a loop device (outside the agent's scope)."""
    pv = PhysicalVolume("/dev/vdc1", "localcsi-pool-0", 5 * GiB, 4 * GiB)
    devices = (
        _disk("vdb"),
        _disk("vdc", partitions=("vdc1",)),
        _disk("vdc1", type="part", parent="vdc", fstype="LVM2_member"),
        _disk("vdd", mountpoint="/mnt/localcsi/a", fstype="ext4", rotational=True),
        _disk("vde", fstype="LVM2_member"),
        _disk("nvme0n1", size_bytes=0),
        _disk("sda", read_only=True),
        _disk("loop0"),
    )
    mount = MountedFilesystem("/mnt/localcsi/a", "/dev/vdd", "ext4", ("rw", "noatime"), 10 * GiB, 9 * GiB, False)
    group = VolumeGroup("localcsi-pool-0", 5 * GiB, 4 * GiB, EXTENT, 1, pvs=(pv,))
    free = PhysicalVolume("/dev/vde", "", 10 * GiB, 10 * GiB)
    return NodeInventory(devices=devices, vgs=(group,), free_pvs=(free,), mounts=(mount,))


INVENTORY = synthetic_inventory()


def agent_handles_storage(nls: Mapping[str, Any]) -> dict[str, Any]:
    """The status the agent would write for ``nls`` on the synthetic node; raises only on a bug."""
    raw_spec = nls.get("spec") or {}
    spec = parse_spec(raw_spec)
    entries, _problems = parse_mount_points_to_init(raw_spec)  # problems become Events
    for entry in entries:
        entry.fstab_line(FS_UUID)
    scoped = scoped_devices(INVENTORY, DEFAULT_DEVICE_PATTERNS)
    probed = devices_to_probe(spec, INVENTORY)
    # blkid finds nothing on every other device: both branches of the plan are taken.
    signatures = {path: (None if index % 2 == 0 else "ext4") for index, path in enumerate(probed)}
    offered = frozenset(offered_devices(spec, INVENTORY, scoped))
    plan = plan_vg_init(spec, INVENTORY, signatures, frozenset(d.path for d in scoped), offered)
    conditions = [discovered_condition(spec, INVENTORY), init_condition(spec, plan, {})]
    generation = int((nls.get("metadata") or {}).get("generation") or 0)
    return build_status(
        spec, INVENTORY, conditions, previous=nls.get("status"), now=NOW, generation=generation,
        patterns=DEFAULT_DEVICE_PATTERNS,
    )  # fmt: skip


def fake_lvm_backend(node: str, vg_name: str = "localcsi-a") -> LocalLvmBackend:
    """LocalLvmBackend over an in-memory lvm2 with one VG and a thin pool ``pool0`` in it."""
    lvm = FakeLvm(vg(vg_name, gib=64))
    lvm.add(pool(vg_name, "pool0", size=16 * GiB))
    return LocalLvmBackend(lvm, node, devices=FakeDevices(lvm.calls))


class FailingRunner:
    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        raise CommandFailed(argv, 1, f"{argv[0]}: not available on this test node")
