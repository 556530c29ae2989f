"""Helpers for the node-service tests: tagged LVs in the guest, and NodeService calls run there.

Each call runs the real ``NodeService`` over the real fs and lvm adapters inside the node VM, and
returns its result or the core error's code, so tests assert on what a CSI caller would see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localcsi.core.ids import make_ref
from localcsi.core.names import volume_lv_name
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.testing.install import GUEST_SITE
from localcsi.testing.vm import NodeVM

NODE_ID = "node-1"
MIB = 1024**2
GIB = 1024**3
GUEST_CALL = "/opt/localcsi/node_call.py"

_CALL_SCRIPT = """
import dataclasses, json, sys
from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import CoreError
from localcsi.driver.node import ExpandRequest, NodeService, PublishRequest
from localcsi.fs.adapter import Filesystems
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner

call = json.loads(sys.argv[1])
runner = SubprocessRunner()
service = NodeService(call["node"], Filesystems(runner), Lvm(runner), vg_allowed=lambda vg: vg.startswith("localcsi-"))
op = call["op"]
try:
    if op == "publish":
        cap = call["capability"]
        capability = None if cap is None else Capability(
            cap["mode"], AccessType(cap["access"]), cap.get("fs_type", ""), tuple(cap.get("flags", ()))
        )
        service.publish(PublishRequest(call["volume_id"], call["path"], capability, call.get("readonly", False)))
        result = None
    elif op == "unpublish":
        result = service.unpublish(call["volume_id"], call["path"])
    elif op == "expand":
        result = service.expand(ExpandRequest(call["volume_id"], call["path"], call.get("required_bytes", 0)))
    elif op == "stats":
        stats = service.stats(call["volume_id"], call["path"])
        result = {
            "total_bytes": stats.total_bytes,
            "usage": dataclasses.asdict(stats.usage) if stats.usage else None,
            "abnormal": stats.condition.abnormal,
            "message": stats.condition.message,
        }
    else:
        raise SystemExit(f"unknown op {op}")
    print(json.dumps({"ok": True, "result": result}))
except CoreError as error:
    print(json.dumps({"ok": False, "code": error.code, "message": error.message}))
"""


@dataclass(frozen=True)
class CallResult:
    ok: bool
    result: Any = None
    code: str = ""
    message: str = ""


def mount_cap(fs_type: str = "", flags: tuple[str, ...] = (), mode: str = "SINGLE_NODE_WRITER") -> dict[str, Any]:
    return {"mode": mode, "access": "mount", "fs_type": fs_type, "flags": list(flags)}


def block_cap(mode: str = "SINGLE_NODE_WRITER") -> dict[str, Any]:
    return {"mode": mode, "access": "block"}


class GuestNode:
    """NodeService calls in the guest, plus the guest-side facts the tests check."""

    def __init__(self, vm: NodeVM) -> None:
        self.vm = vm
        vm.guest.put(GUEST_CALL, _CALL_SCRIPT.encode())

    def call(self, op: str, volume_id: str, path: str, **fields: Any) -> CallResult:
        payload = json.dumps({"op": op, "node": NODE_ID, "volume_id": volume_id, "path": path, **fields})
        out = self.vm.check(["python3", GUEST_CALL, payload], env={"PYTHONPATH": GUEST_SITE}, timeout=600)
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        return CallResult(answer["ok"], answer.get("result"), answer.get("code", ""), answer.get("message", ""))

    def ok(self, op: str, volume_id: str, path: str, **fields: Any) -> Any:
        answer = self.call(op, volume_id, path, **fields)
        assert answer.ok, f"{op} {volume_id} {path} failed: {answer.code}: {answer.message}"
        return answer.result

    def publish(self, volume_id: str, path: str, capability: dict[str, Any], readonly: bool = False) -> CallResult:
        return self.call("publish", volume_id, path, capability=capability, readonly=readonly)

    # -- guest facts ------------------------------------------------------------------------------

    def sh(self, script: str) -> str:
        return self.vm.check(["sh", "-c", script], timeout=600).stdout

    def mount_line(self, target: str) -> list[str]:
        """The /proc/mounts fields for ``target``: source, target, fstype, options, ..."""
        lines = [line.split() for line in self.vm.check(["cat", "/proc/mounts"]).stdout.splitlines()]
        matches = [fields for fields in lines if fields[1] == target]
        assert matches, f"{target} is not in /proc/mounts"
        return matches[-1]

    def mounted(self, target: str) -> bool:
        return any(line.split()[1] == target for line in self.vm.check(["cat", "/proc/mounts"]).stdout.splitlines())

    def exists(self, path: str) -> bool:
        return self.vm.run(["test", "-e", path]).rc == 0

    def sha256(self, path: str, size_bytes: int | None = None) -> str:
        if size_bytes is None:
            return self.vm.check(["sha256sum", path]).stdout.split()[0]
        script = f"head -c {size_bytes} {path} | sha256sum"
        return self.sh(script).split()[0]

    def blkid_type(self, device: str) -> str:
        return self.vm.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device]).stdout.strip()


def make_vg(vm: NodeVM, vg: str, disk: str) -> None:
    vm.check(["pvcreate", "-y", disk])
    vm.check(["vgcreate", "-y", vg, disk])


def create_volume(
    vm: NodeVM, vg: str, csi_name: str, size_bytes: int, *, thin_pool: str = "", fs_type: str = "", access: str = ""
) -> tuple[str, str]:
    """A volume LV as the controller makes it (name and tags); returns (volume id, device path)."""
    lv = volume_lv_name(csi_name)
    meta = LvMetadata(LvKind.VOLUME, csi_name, size_bytes, fs_type=fs_type or None, access_type=access or None)
    tags = [arg for tag in encode_tags(meta) for arg in ("--addtag", tag)]
    if thin_pool:
        size_args = ["--type", "thin", "--thinpool", thin_pool, "--virtualsize", f"{size_bytes}b"]
    else:
        size_args = ["--type", "linear", "--size", f"{size_bytes}b", "--wipesignatures", "y", "--zero", "y"]
    vm.check(["lvcreate", "--yes", "--name", lv, *size_args, *tags, vg])
    return str(make_ref(NODE_ID, vg, lv)), f"/dev/{vg}/{lv}"
