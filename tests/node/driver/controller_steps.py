"""Runs ControllerDriver steps inside the node VM; prints one JSON result per step as it goes.

Input (stdin): {"node": ..., "steps": [...]}. A step names volumes and snapshots by their CSI
names; the ids they got earlier in the run are substituted. ``sh`` steps run a command with
``{dev:NAME}`` replaced by the volume's device path. Each result is {"ok": value} or
{"error": code, "message": text}, so tests assert what a CSI caller would see.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import CoreError
from localcsi.core.model import Snapshot, Volume
from localcsi.core.names import snapshot_lv_name, volume_lv_name
from localcsi.core.tags import Source, SourceKind
from localcsi.driver.backend import is_ready, volume_context
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.driver.requests import CapacityRequest, CreateVolumeRequest, ExpandVolumeRequest, ListSnapshotsRequest
from localcsi.driver.topology import TopologyRequirement
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner


class Run:
    def __init__(self, node: str) -> None:
        backend = LocalLvmBackend(Lvm(SubprocessRunner()), node, vg_allowed=lambda vg: vg.startswith("localcsi-"))
        self.driver = ControllerDriver(backend)
        self.ids: dict[str, str] = {}
        self.devices: dict[str, str] = {}

    def id(self, step: dict[str, Any], key: str) -> str:
        """The id of the volume or snapshot a step names: given, made earlier in this run, or looked up."""
        if f"{key}_id" in step:
            return str(step[f"{key}_id"])
        name = step[key]
        if name not in self.ids:
            backend = self.driver.backend
            found = (
                backend.find_snapshot(snapshot_lv_name(name))
                if key == "snapshot"
                else backend.find_volume(volume_lv_name(name))
            )
            return found.id if found is not None else name
        return self.ids[name]

    def volume(self, volume: Volume) -> dict[str, Any]:
        self.ids[volume.name] = volume.id
        self.devices[volume.name] = volume.lv.device_path
        return {
            "id": volume.id,
            "vg": volume.ref.vg,
            "lv": volume.ref.lv,
            "size": volume.size_bytes,
            "lvm_type": str(volume.lvm_type),
            "device": volume.lv.device_path,
            "source": str(volume.source) if volume.source else None,
            "context": volume_context(volume),
            "ready": is_ready(volume),
        }

    def snapshot(self, snapshot: Snapshot) -> dict[str, Any]:
        self.ids[snapshot.name] = snapshot.id
        return {
            "id": snapshot.id,
            "size": snapshot.size_bytes,
            "thin": snapshot.thin,
            "ready": snapshot.ready,
            "cow": snapshot.lv.size_bytes,
            "source": snapshot.source_volume_id,
        }

    def source(self, step: dict[str, Any]) -> Source | None:
        if "from_snapshot" in step:
            return Source(SourceKind.SNAPSHOT, self.id({"snapshot": step["from_snapshot"]}, "snapshot"))
        if "from_volume" in step:
            return Source(SourceKind.VOLUME, self.id({"volume": step["from_volume"]}, "volume"))
        return None

    def create(self, step: dict[str, Any]) -> dict[str, Any]:
        access = AccessType(step.get("access", "mount"))
        capability = Capability(step.get("mode", "SINGLE_NODE_WRITER"), access, step.get("fs", ""))
        topology = None
        if "requisite" in step or "preferred" in step:
            topology = TopologyRequirement(tuple(step.get("requisite", ())), tuple(step.get("preferred", ())))
        request = CreateVolumeRequest(
            name=step["name"],
            capabilities=(capability,),
            required_bytes=step.get("bytes", 0),
            limit_bytes=step.get("limit", 0),
            parameters=step.get("params", {}),
            source=self.source(step),
            topology=topology,
        )
        return self.volume(self.driver.create_volume(request))

    def parallel_create(self, step: dict[str, Any]) -> list[dict[str, Any]]:
        """Create volumes from many threads at once, as a CO's workers do; each outcome in order."""

        def attempt(name: str) -> dict[str, Any]:
            try:
                return {"ok": self.create({**step, "name": name})}
            except CoreError as error:
                return {"error": error.code, "message": error.message}

        with ThreadPoolExecutor(max_workers=len(step["names"])) as pool:
            return list(pool.map(attempt, step["names"]))

    def sh(self, step: dict[str, Any]) -> dict[str, Any]:
        command = step["cmd"]
        for name, device in self.devices.items():
            command = command.replace("{dev:" + name + "}", shlex.quote(device))
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
        return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    def step(self, step: dict[str, Any]) -> Any:  # noqa: PLR0911 - one branch per operation
        op = step["op"]
        driver = self.driver
        if op == "create":
            return self.create(step)
        if op == "delete":
            return driver.delete_volume(self.id(step, "volume"))
        if op == "expand":
            grown, node = driver.expand_volume(
                ExpandVolumeRequest(self.id(step, "volume"), step.get("bytes", 0), step.get("limit", 0))
            )
            return {**self.volume(grown), "node_expansion": node}
        if op == "get":
            volume = driver.get_volume(self.id(step, "volume"))
            condition = driver.backend.condition(volume)
            return {**self.volume(volume), "abnormal": condition.abnormal, "message": condition.message}
        if op == "list":
            page = driver.list_volumes(step.get("max", 0), step.get("token", ""))
            return {"ids": [v.id for v in page.entries], "next": page.next_token}
        if op == "snapshot":
            return self.snapshot(driver.snapshots.create(step["name"], self.id(step, "volume"), step.get("params", {})))
        if op == "delete_snapshot":
            return driver.snapshots.delete(self.id(step, "snapshot"))
        if op == "list_snapshots":
            snapshots = driver.snapshots.list(ListSnapshotsRequest(step.get("max", 0), step.get("token", "")))
            return {"ids": [s.id for s in snapshots.entries], "next": snapshots.next_token}
        if op == "capacity":
            found = driver.capacity(CapacityRequest(step.get("params", {}), topology=step.get("topology")))
            return {"available": found.available_bytes, "maximum": found.maximum_volume_bytes}
        if op == "validate":
            capability = Capability("SINGLE_NODE_WRITER", AccessType(step.get("access", "mount")), step.get("fs", ""))
            return driver.validate_capabilities(self.id(step, "volume"), (capability,), step.get("params", {}))
        if op == "sh":
            return self.sh(step)
        if op == "parallel_create":
            return self.parallel_create(step)
        raise SystemExit(f"unknown op {op!r}")


def main() -> None:
    if len(sys.argv) > 1:  # a file, for a run spawned in the background (and killed)
        with open(sys.argv[1]) as steps:
            request = json.load(steps)
    else:
        request = json.load(sys.stdin)
    run = Run(request["node"])
    for step in request["steps"]:
        try:
            result: dict[str, Any] = {"ok": run.step(step)}
        except CoreError as error:
            result = {"error": error.code, "message": error.message}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
