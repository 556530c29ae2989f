"""Agent cycles run inside the node VM, against real lsblk, findmnt, blkid and lvm2.

The guest script drives the real ``Agent.cycle``; only the apiserver is replaced, by a writer that
keeps the status it is sent (as a status patch would) and a recorder that keeps the Events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localcsi.testing.install import GUEST_SITE
from localcsi.testing.vm import NodeVM

NODE = "node-1"
GUEST_SCRIPT = "/opt/localcsi/agent_cycle.py"

_SCRIPT = """
import json, sys
from localcsi.agent.cycle import Agent
from localcsi.agent.orphans import OrphanTracker
from localcsi.agent.status import StatusPublisher
from localcsi.lvm.runner import SubprocessRunner

class Writer:
    def __init__(self):
        self.status, self.writes = None, 0
    def patch_status(self, name, status):
        self.status, self.writes = status, self.writes + 1
        return {"metadata": {"name": name}, "status": status}

class Events:
    def __init__(self):
        self.seen = []
    def record(self, involved, event_type, reason, message):
        self.seen.append([event_type, reason, message])

call = json.loads(sys.argv[1])
writer, events = Writer(), Events()
agent = Agent(call["node"], SubprocessRunner(), StatusPublisher(writer, events), None, orphans=OrphanTracker(0, False))
nls = {"metadata": {"name": call["node"], "generation": 1}, "spec": call["spec"], "status": call["status"]}
cycles = []
for _ in range(call["cycles"]):
    result = agent.cycle(nls)
    nls["status"] = writer.status
    cycles.append({"commands": result.commands, "lvm_commands": result.lvm_commands, "seconds": result.seconds,
                   "written": result.written, "argv": [list(argv) for argv in agent.runner.commands]})
print(json.dumps({"cycles": cycles, "status": writer.status, "events": events.seen, "writes": writer.writes}))
"""


@dataclass(frozen=True)
class CycleRun:
    cycles: list[dict[str, Any]]
    status: dict[str, Any]
    events: list[list[str]]
    writes: int

    def vg(self, name: str) -> dict[str, Any]:
        groups: dict[str, dict[str, Any]] = {g["name"]: g for g in self.status["nodeStorageInfo"]["volumeGroups"]}
        assert name in groups, f"{name} not in status: {sorted(groups)}"
        return groups[name]

    def condition(self, kind: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.status["conditions"] if c["type"] == kind)
        return found


class GuestAgent:
    def __init__(self, vm: NodeVM) -> None:
        self.vm = vm
        vm.guest.put(GUEST_SCRIPT, _SCRIPT.encode())

    def run(self, spec: dict[str, Any], cycles: int = 1, status: dict[str, Any] | None = None) -> CycleRun:
        payload = json.dumps({"node": NODE, "spec": spec, "cycles": cycles, "status": status})
        out = self.vm.check(["python3", GUEST_SCRIPT, payload], env={"PYTHONPATH": GUEST_SITE}, timeout=900)
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        return CycleRun(answer["cycles"], answer["status"], answer["events"], answer["writes"])

    def report(self, command: str, *args: str) -> list[dict[str, str]]:
        """Rows of ``vgs``/``pvs``/``lvs`` in bytes, as an operator would read them."""
        section = {"vgs": "vg", "pvs": "pv", "lvs": "lv"}[command]
        argv = [command, "--reportformat", "json", "--units", "b", "--nosuffix", *args]
        rows: list[dict[str, str]] = json.loads(self.vm.check(argv).stdout)["report"][0][section]
        return rows

    def vgs(self) -> dict[str, dict[str, str]]:
        rows = self.report("vgs", "-o", "vg_name,vg_size,vg_free,vg_extent_size,vg_tags")
        return {row["vg_name"]: row for row in rows}

    def sh(self, script: str) -> str:
        return self.vm.check(["sh", "-c", script], timeout=900).stdout
