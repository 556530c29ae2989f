"""Host side of the controller's node tests: runs ControllerDriver steps in the node VM.

``controller_steps.py`` is copied into the guest and runs the real driver over real lvm2 there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localcsi.testing.install import GUEST_SITE
from localcsi.testing.vm import NodeVM

NODE = "node-1"
MIB = 1024**2
GIB = 1024**3
GUEST_SCRIPT = "/opt/localcsi/controller_steps.py"
GUEST_ENV = {"PYTHONPATH": GUEST_SITE}
LVS_FIELDS = "lv_name,vg_name,lv_size,lv_attr,lv_tags,origin"


class StepFailed(AssertionError):
    pass


class GuestController:
    def __init__(self, vm: NodeVM) -> None:
        self.vm = vm
        vm.guest.put(GUEST_SCRIPT, (Path(__file__).parent / "controller_steps.py").read_bytes())

    def payload(self, steps: tuple[dict[str, Any], ...]) -> bytes:
        return json.dumps({"node": NODE, "steps": list(steps)}).encode()

    def run(self, *steps: dict[str, Any], timeout: float = 900) -> list[dict[str, Any]]:
        """Every step's result: {"ok": value} or {"error": code, "message": text}."""
        done = self.vm.run(["python3", GUEST_SCRIPT], stdin=self.payload(steps), env=GUEST_ENV, timeout=timeout)
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.rc != 0 or len(results) != len(steps):
            raise StepFailed(f"the steps stopped after {len(results)} of {len(steps)}: {done.stderr[-3000:]}")
        return results

    def ok(self, *steps: dict[str, Any], timeout: float = 900) -> list[Any]:
        results = self.run(*steps, timeout=timeout)
        for step, result in zip(steps, results, strict=True):
            if "error" in result:
                raise StepFailed(f"{step} failed: {result['error']}: {result['message']}")
        return [result["ok"] for result in results]

    def one(self, step: dict[str, Any]) -> Any:
        return self.ok(step)[0]

    def code(self, step: dict[str, Any]) -> str | None:
        result = self.run(step)[0]
        return result.get("error")

    def spawn(self, *steps: dict[str, Any], log: str) -> int:
        """Start the steps in the background (to be killed); returns the guest pid."""
        path = f"{log}.json"
        self.vm.guest.put(path, self.payload(steps))
        return self.vm.guest.spawn(["python3", GUEST_SCRIPT, path], log=log, env=GUEST_ENV)

    def sh(self, command: str) -> str:
        return self.vm.check(["sh", "-c", command]).stdout

    def lvs(self, vg: str) -> list[dict[str, str]]:
        out = self.vm.check(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", LVS_FIELDS, vg])
        rows: list[dict[str, str]] = out.json()["report"][0]["lv"]
        return rows

    def sha256(self, path: str, mib: int) -> str:
        return self.sh(f"head -c {mib * MIB} {path} | sha256sum").split()[0]
