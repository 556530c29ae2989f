"""The node agent's crash matrix in cluster mode (tests/cluster/test_agent_crash_matrix.py): the agent
in the VM with the crash points' stand-ins first on its PATH, and the checks that a retry converged.

Convergence, after a kill -9, a restart and the sidecar's retry: the LVs of the node's VGs are exactly
the expected ones (no duplicate, no temporary ``clone-`` snapshot, nothing still tagged as being
filled); no orphan (an LV with our tags that no LogicalVolume names, by the agent's own rule in
``agent/orphans.py``); no lost volume (every LogicalVolume of the node is Ready, its status names its
LV, which exists, is healthy and has the size the status reports).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Sequence

from localcsi.agent.orphans import claimed, find_orphans
from localcsi.core.model import LogicalVolume
from localcsi.driver.backend import CREATING_TAG
from localcsi.k8s.resources import CustomResources
from localcsi.lvm.commands import lvs_argv
from localcsi.lvm.reports import parse_lvs
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import HEALTHY_CONDITION, Phase
from localcsi.testing import crash_points
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.guest_agent import GuestAgent, connect_guest
from localcsi.testing.vm import NodeVM
from localcsi.testing.waiting import wait_for

LOG = "/var/log/localcsi-agent-crash.log"
START_TIMEOUT = 300.0  # an agent start under TCG beside other VMs: tens of seconds, sometimes more
# sha256 of a device's first N bytes, in the guest, with no shell.
DIGEST = (
    "import hashlib, sys\n"
    "h = hashlib.sha256()\n"
    "left = int(sys.argv[2])\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    while left > 0:\n"
    "        chunk = f.read(min(left, 1 << 20))\n"
    "        if not chunk: raise SystemExit('short read')\n"
    "        h.update(chunk)\n"
    "        left -= len(chunk)\n"
    "print(h.hexdigest())\n"
)


class CrashAgent:
    """`localcsi agent` for one node in the VM, with crash-point stand-ins for ``commands`` first on
    its PATH. ``start`` returns once its LogicalVolume reconciler runs, and records how long that took."""

    def __init__(self, vm: NodeVM, cluster: KubeCluster, node: str, commands: Iterable[str]) -> None:
        connect_guest(vm, cluster)
        self.vm = vm
        self.argv = [*GuestAgent(vm, cluster, node).argv(), "--resync-seconds", "10"]
        self.env = crash_points.install(vm, commands)
        self.pid: int | None = None
        self.start_seconds: list[float] = []

    def start(self) -> None:
        offset = self._size()
        started = time.monotonic()
        self.pid = self.vm.guest.spawn(self.argv, log=LOG, env=self.env)

        def reconciling() -> bool:
            if not self.vm.guest.signal(self.pid or 0, 0)[0]:
                raise AssertionError(f"the agent exited at start:\n{self.logs()}")
            return "reconciling LogicalVolumes" in self.logs(offset)

        wait_for("the agent's LogicalVolume reconciler to start", reconciling, START_TIMEOUT, 0.5, self.logs)
        self.start_seconds.append(time.monotonic() - started)

    def _size(self) -> int:
        result = self.vm.run(["stat", "-c", "%s", LOG])
        return int(result.stdout) if result.rc == 0 else 0

    def logs(self, offset: int | None = None) -> str:
        """The log from byte ``offset`` on, or its last 8000 bytes."""
        argv = ["tail", "-c", f"+{offset + 1}" if offset is not None else "8000", LOG]
        result = self.vm.run(argv)
        return result.stdout if result.rc == 0 else ""

    def alive(self) -> bool:
        return self.pid is not None and self.vm.guest.signal(self.pid, 0)[0]

    def kill(self) -> None:
        """SIGKILL (or reap one already killed)."""
        assert self.pid is not None, "the agent is not started"
        alive, _ = self.vm.guest.signal(self.pid, signal.SIGKILL, wait=30)
        assert not alive
        self.pid = None

    def stop(self) -> None:
        if self.pid is not None:
            self.vm.guest.signal(self.pid, signal.SIGTERM, wait=30)
            self.pid = None


def guest_lvs(vm: NodeVM, vgs: Sequence[str]) -> list[LogicalVolume]:
    """Every LV of ``vgs``, as the agent's own parser reads them."""
    lvs = parse_lvs(vm.check(lvs_argv()).stdout)
    return [lv for lv in lvs if lv.vg in vgs]


def visible(lvs: Iterable[LogicalVolume], pools: Sequence[str]) -> set[str]:
    """``vg/lv`` of every LV but thin pools and lvm2's hidden sub-LVs: what a leftover would show up in."""
    return {f"{lv.vg}/{lv.name}" for lv in lvs if lv.name not in pools and not lv.name.startswith("[")}


def digest(vm: NodeVM, vg: str, lv: str, size: int) -> str:
    """sha256 of the LV's first ``size`` bytes, activated first if it is not (a thin snapshot may skip
    activation; an active thick snapshot is left alone: lvchange would ask whether to change its origin)."""
    [row] = [one for one in guest_lvs(vm, (vg,)) if one.name == lv]
    if not row.is_active:
        vm.check(["lvchange", "--activate", "y", "--ignoreactivationskip", f"{vg}/{lv}"])
    return vm.check(["python3", "-c", DIGEST, f"/dev/{vg}/{lv}", str(size)], timeout=600).stdout.strip()


def assert_converged(
    vm: NodeVM, resources: CustomResources, node: str, vgs: Sequence[str], *, pools: Sequence[str], expected: set[str]
) -> None:
    """The node's LVs and LogicalVolumes after a retry: see the module's docstring."""
    lvs = guest_lvs(vm, vgs)
    found = visible(lvs, pools)
    assert found == expected, f"LVs {sorted(found - expected)} left over, {sorted(expected - found)} missing"
    filling = sorted(f"{lv.vg}/{lv.name}" for lv in lvs if CREATING_TAG in lv.tags)
    assert not filling, f"still tagged as being filled: {filling}"
    objects, _ = resources.list(llv.node_selector(node))
    orphans = sorted(f"{lv.vg}/{lv.name}" for lv in find_orphans(lvs, claimed(objects)))
    assert not orphans, f"orphans: LVs with localcsi tags that no LogicalVolume names: {orphans}"
    by_name = {(lv.vg, lv.name): lv for lv in lvs}
    for obj in objects:
        at, status = llv.ref(obj), llv.status(obj)
        where = f"LogicalVolume {llv.name(obj)}"
        assert not llv.is_deleting(obj), f"{where} is still being deleted: {status}"
        assert llv.phase(obj) is Phase.READY, f"{where} is not Ready: {status}"
        assert status.get("volumeId") == f"{node}/{at.vg}/{at.lv}", f"{where}: {status}"
        lv = by_name.get((at.vg, at.lv))
        assert lv is not None, f"{where} is Ready, and its LV {at.vg}/{at.lv} is lost"
        assert int(status.get("currentSize") or 0) == lv.size_bytes, f"{where}: {status} against lvs' {lv.size_bytes}"
        healthy = llv.condition(obj, HEALTHY_CONDITION)
        assert healthy is not None and healthy.get("status") == "True", f"{where}: {healthy}"
