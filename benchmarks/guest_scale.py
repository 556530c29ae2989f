"""Runs inside the node VM: one node's plugin taken to VOLUMES volumes and back, timed in the guest.

    python3 guest_scale.py THICK_VG THIN_VG POOL SOCKET PLUGIN_PID VOLUMES SAMPLE PUBLISH

Half the volumes are thick, half thin. SAMPLE creates (and deletes) are timed one at a time with few
volumes on the node and again with VOLUMES on it; the bulk between is made by four callers at once.
Also: ListVolumes paged by 100 over all of them, PUBLISH raw block publishes and unpublishes, one
agent discovery cycle (its command count), and the plugin's RSS from /proc. Prints a JSON line as each
phase ends, and the whole result last.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from localcsi.agent.cycle import Agent
from localcsi.agent.orphans import OrphanTracker
from localcsi.agent.status import StatusPublisher
from localcsi.csi import csi_pb2, services
from localcsi.lvm.runner import SubprocessRunner
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.percentiles import nearest_rank

SIZE = 8 * MIB
BLOCK = req.block_capability()


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


class Keeper:
    """Stands in for the apiserver: keeps the status the agent sends and drops its Events."""

    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None

    def patch_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.status = status
        return {"metadata": {"name": name}, "status": status}

    def record(self, involved: object, event_type: str, reason: str, message: str) -> None:
        pass


def agent_cycle(vgs: list[str]) -> dict[str, Any]:
    keeper = Keeper()
    agent = Agent("node-1", SubprocessRunner(), StatusPublisher(keeper, keeper), None, orphans=OrphanTracker(0, False))
    nls = {"metadata": {"name": "node-1", "generation": 1}, "spec": {"listConfig": {"vgs": {"include": vgs}}}}
    result = agent.cycle(nls)
    groups = (keeper.status or {}).get("nodeStorageInfo", {}).get("volumeGroups", [])
    return {
        "commands": result.commands,
        "lvm_commands": result.lvm_commands,
        "seconds": result.seconds,
        "logical_volumes": sum(len(group.get("logicalVolumes", [])) for group in groups),
    }


def rss_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def report_phase(result: dict[str, Any], name: str, value: Any) -> None:
    """Keep a phase's figures and print them at once, a JSON line, for whoever follows the log."""
    result[name] = value
    print(json.dumps({"phase": name, "value": value}), flush=True)


def main() -> None:
    thick_vg, thin_vg, pool, socket = sys.argv[1:5]
    pid, volumes, sample, publish = (int(value) for value in sys.argv[5:9])
    controller = Controller(socket, {"vgName": thick_vg}, {"vgName": thin_vg, "lvmType": "thin", "thinPool": pool})
    result: dict[str, Any] = {"volumes": volumes}
    report_phase(result, "rss_kib_at_start", rss_kib(pid))
    report_phase(result, "cycle_few", agent_cycle([thick_vg, thin_vg]))
    report_phase(result, "create_few", summary([controller.create(index) for index in range(sample)]))
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool_of_callers:
        bulk = list(pool_of_callers.map(controller.create, range(sample, volumes - sample)))
    report_phase(result, "bulk_create", {"wall": time.perf_counter() - started, **summary(bulk)})
    last = range(volumes - sample, volumes)
    report_phase(result, "create_many", summary([controller.create(index) for index in last]))
    report_phase(result, "cycle_many", agent_cycle([thick_vg, thin_vg]))
    listing_started = time.perf_counter()
    entries, pages = list_all(controller)
    report_phase(result, "list", {"entries": entries, "pages": pages, "wall": time.perf_counter() - listing_started})
    published, unpublished = publish_some(controller, publish)
    report_phase(result, "publish", summary(published))
    report_phase(result, "unpublish", summary(unpublished))
    report_phase(result, "rss_kib_at_volumes", rss_kib(pid))
    report_phase(result, "delete_many", summary([controller.delete(index) for index in last]))
    with ThreadPoolExecutor(4) as pool_of_callers:
        list(pool_of_callers.map(controller.delete, range(sample, volumes - sample)))
    report_phase(result, "delete_few", summary([controller.delete(index) for index in range(sample)]))
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
