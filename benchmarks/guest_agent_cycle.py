"""Runs inside the node VM: one agent discovery cycle in a process of its own, and that process's RSS.

    python3 guest_agent_cycle.py VG...

The agent's process imports ``localcsi.agent.main`` (its Kubernetes client and metrics included), so
this one does too before the cycle; the apiserver is replaced by a keeper of the status. Prints one
JSON line: the cycle's commands, lvm2 commands, seconds, the LVs in the status, and VmRSS and VmHWM
after the cycle (issue 16's bound for the agent: 60 MiB with 1000 volumes).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import localcsi.agent.main  # noqa: F401 -- what the agent's process holds, measured with it
from localcsi.agent.cycle import Agent
from localcsi.agent.orphans import OrphanTracker
from localcsi.agent.status import StatusPublisher
from localcsi.lvm.runner import SubprocessRunner
from localcsi.testing.proc_status import rss_kib


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
        "rss_kib": rss_kib(),
    }


if __name__ == "__main__":
    print(json.dumps(agent_cycle(sys.argv[1:])), flush=True)
