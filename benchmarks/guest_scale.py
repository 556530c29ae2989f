"""Runs inside the node VM: one node's plugin taken to VOLUMES volumes and back, timed in the guest.

    python3 guest_scale.py THICK_VG THIN_VG POOL SOCKET PLUGIN_PID VOLUMES SAMPLE PUBLISH

Half the volumes are thick, half thin. SAMPLE creates (and deletes) are timed one at a time with few
volumes on the node and again with VOLUMES on it; the bulk between is made by four callers at once.
The baseline in the same run: each timed CreateVolume is followed by a bare ``lvcreate`` of the same
size and kind (the plugin's own argv, run here without the plugin), and those LVs are then removed
one at a time with ``lvremove``, so the ratio of the two says how much of CreateVolume's growth is
lvm2's own (its metadata grows with every LV).
Also: ListVolumes paged by 100 over all of them, PUBLISH raw block publishes and unpublishes, one
agent discovery cycle in a process of its own (guest_agent_cycle.py: its command count and its RSS after
the cycle, with the agent's modules imported as the agent's process imports them), and the plugin's
RSS from /proc. Prints a JSON line as each phase ends, and the whole result last.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from localcsi.core.params import LvmType
from localcsi.csi import csi_pb2, services
from localcsi.lvm import commands
from localcsi.lvm.runner import COMMAND_ENV
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.percentiles import nearest_rank
from localcsi.testing.proc_status import anonymous_kib, rss_kib, threads

SIZE = 8 * MIB
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
BLOCK = req.block_capability()


class BareLvm:
    """lvcreate and lvremove of the plugin's kinds, without the plugin: argv lists, no shell."""

    def __init__(self, thick_vg: str, thin_vg: str, pool: str) -> None:
        self.specs = (
            functools.partial(commands.LvSpec, vg=thick_vg, size_bytes=SIZE, lvm_type=LvmType.LINEAR),
            functools.partial(commands.LvSpec, vg=thin_vg, size_bytes=SIZE, lvm_type=LvmType.THIN, thin_pool=pool),
        )
        self.env = {**os.environ, **COMMAND_ENV}
        self.made: list[tuple[str, str]] = []

    def run(self, argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, env=self.env)
        return time.perf_counter() - started

    def create(self, index: int) -> float:
        """Index ``index`` is of the same kind as the plugin's volume ``scale-{index}``."""
        spec = self.specs[index % 2](name=f"bare-{index}")
        self.made.append((spec.vg, spec.name))
        return self.run(commands.lvcreate_argv(spec))

    def remove_all(self) -> list[float]:
        made, self.made = self.made, []
        return [self.run(commands.lvremove_argv(vg, name)) for vg, name in made]


class Controller:
    def __init__(self, socket: str, thick: dict[str, str], thin: dict[str, str]) -> None:
        channel = grpc.insecure_channel(f"unix:{socket}")
        self.stub = services.controller_stub(channel)
        self.node = services.node_stub(channel)
        self.params = (thick, thin)
        self.ids: dict[str, str] = {}

    def create(self, index: int) -> float:
        name = f"scale-{index}"
        started = time.perf_counter()
        request = req.create_volume(name, SIZE, self.params[index % 2], BLOCK)
        self.ids[name] = self.stub.CreateVolume(request, timeout=600).volume.volume_id
        return time.perf_counter() - started

    def delete(self, index: int) -> float:
        started = time.perf_counter()
        self.stub.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=self.ids.pop(f"scale-{index}")), timeout=600)
        return time.perf_counter() - started


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "count": len(ordered),
        "p50": statistics.median(ordered),
        "p99": nearest_rank(ordered, 0.99),
        "max": ordered[-1],
    }


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def list_all(controller: Controller) -> tuple[int, int]:
    """Entries and pages of ListVolumes paged by 100."""
    token, entries, pages = "", 0, 0
    while True:
        page = controller.stub.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=100, starting_token=token))
        entries, pages, token = entries + len(page.entries), pages + 1, page.next_token
        if not token:
            return entries, pages


def publish_some(controller: Controller, count: int) -> tuple[list[float], list[float]]:
    published, unpublished = [], []
    volumes = [(controller.ids[f"scale-{index}"], f"/var/lib/localcsi-scale/{index}") for index in range(count)]
    for volume_id, target in volumes:
        published.append(timed(functools.partial(controller.node.NodePublishVolume,
                                                 req.publish(volume_id, target, BLOCK))))  # fmt: skip
    for volume_id, target in volumes:
        unpublished.append(timed(functools.partial(controller.node.NodeUnpublishVolume,
                                                   req.unpublish(volume_id, target))))  # fmt: skip
    return published, unpublished


def agent_cycle(vgs: list[str]) -> dict[str, Any]:
    """One discovery cycle in a python process of its own (guest_agent_cycle.py, beside this script)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest_agent_cycle.py")
    done = subprocess.run([sys.executable, script, *vgs], check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def memory_kib(pid: int) -> dict[str, int]:
    """The plugin's RSS, its anonymous part by kind (malloc arenas, thread stacks, the rest), its threads."""
    return {**rss_kib(pid), **anonymous_kib(pid), "threads": threads(pid)}


def report_phase(result: dict[str, Any], name: str, value: Any) -> None:
    """Keep a phase's figures and print them at once, a JSON line, for whoever follows the log."""
    result[name] = value
    print(json.dumps({"phase": name, "value": value}), flush=True)


def create_with_baseline(controller: Controller, bare: BareLvm, indexes: range) -> dict[str, Any]:
    """Each CreateVolume followed by a bare lvcreate of the same kind; then the bare LVs removed."""
    plugin, lvcreate = [], []
    for index in indexes:
        plugin.append(controller.create(index))
        lvcreate.append(bare.create(index))
    return {"plugin": summary(plugin), "lvcreate": summary(lvcreate), "lvremove": summary(bare.remove_all())}


def main() -> None:
    thick_vg, thin_vg, pool, socket = sys.argv[1:5]
    pid, volumes, sample, publish = (int(value) for value in sys.argv[5:9])
    controller = Controller(socket, {"vgName": thick_vg}, {"vgName": thin_vg, "lvmType": "thin", "thinPool": pool})
    bare = BareLvm(thick_vg, thin_vg, pool)
    result: dict[str, Any] = {"volumes": volumes}
    report_phase(result, "transparent_hugepage", THP.read_text().strip() if THP.exists() else "absent")
    report_phase(result, "rss_kib_at_start", memory_kib(pid))
    report_phase(result, "cycle_few", agent_cycle([thick_vg, thin_vg]))
    report_phase(result, "create_few", create_with_baseline(controller, bare, range(sample)))
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool_of_callers:
        bulk = list(pool_of_callers.map(controller.create, range(sample, volumes - sample)))
    report_phase(result, "bulk_create", {"wall": time.perf_counter() - started, **summary(bulk)})
    last = range(volumes - sample, volumes)
    report_phase(result, "create_many", create_with_baseline(controller, bare, last))
    report_phase(result, "cycle_many", agent_cycle([thick_vg, thin_vg]))
    listing_started = time.perf_counter()
    entries, pages = list_all(controller)
    report_phase(result, "list", {"entries": entries, "pages": pages, "wall": time.perf_counter() - listing_started})
    published, unpublished = publish_some(controller, publish)
    report_phase(result, "publish", summary(published))
    report_phase(result, "unpublish", summary(unpublished))
    report_phase(result, "rss_kib_at_volumes", memory_kib(pid))
    report_phase(result, "delete_many", summary([controller.delete(index) for index in last]))
    with ThreadPoolExecutor(4) as pool_of_callers:
        list(pool_of_callers.map(controller.delete, range(sample, volumes - sample)))
    report_phase(result, "delete_few", summary([controller.delete(index) for index in range(sample)]))
    report_phase(result, "rss_kib_at_end", memory_kib(pid))
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
