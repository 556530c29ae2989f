"""The CSI fuzz driver: runs INSIDE the node VM, next to the plugin, and prints a JSON report.

`python3 -m localcsi.testing.csi_fuzz --seed S --requests N` sends N requests from `csi_fuzz_grammar`
to the plugin over the guest's loopback and checks each answer (see tests/node/plugin/test_csi_fuzz.py
for why the state check is exact enough). Running here rather than on the host saves a guest-agent
round trip and a process start per state check, which under TCG cost more than the requests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from localcsi.csi import csi_pb2, services
from localcsi.testing.csi_fuzz_fields import LINK_DIR, LINKS, VICTIM_DIR, Pools
from localcsi.testing.csi_fuzz_grammar import Grammar

C = grpc.StatusCode
_ANY_ERROR = {C.INVALID_ARGUMENT, C.NOT_FOUND, C.ALREADY_EXISTS, C.OUT_OF_RANGE, C.RESOURCE_EXHAUSTED,
              C.FAILED_PRECONDITION, C.ABORTED}  # fmt: skip
# What the CSI spec lets each RPC answer (every RPC here is advertised, so never UNIMPLEMENTED). A delete
# of something that does not exist is OK, never NOT_FOUND.
ALLOWED: dict[str, set[grpc.StatusCode]] = {
    "CreateVolume": _ANY_ERROR - {C.FAILED_PRECONDITION},
    "DeleteVolume": {C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.ABORTED},
    "ControllerExpandVolume": _ANY_ERROR - {C.ALREADY_EXISTS},
    "CreateSnapshot": _ANY_ERROR - {C.OUT_OF_RANGE},
    "DeleteSnapshot": {C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.ABORTED},
    "ListVolumes": {C.INVALID_ARGUMENT, C.ABORTED},
    "ListSnapshots": {C.INVALID_ARGUMENT, C.ABORTED},
    "ValidateVolumeCapabilities": {C.INVALID_ARGUMENT, C.NOT_FOUND},
    "ControllerModifyVolume": {C.INVALID_ARGUMENT, C.NOT_FOUND, C.OUT_OF_RANGE, C.FAILED_PRECONDITION, C.ABORTED},
    "NodePublishVolume": _ANY_ERROR - {C.OUT_OF_RANGE},
    "NodeUnpublishVolume": {C.INVALID_ARGUMENT, C.NOT_FOUND, C.FAILED_PRECONDITION, C.ABORTED},
    "NodeExpandVolume": _ANY_ERROR - {C.ALREADY_EXISTS},
    "NodeGetVolumeStats": {C.INVALID_ARGUMENT, C.NOT_FOUND},
    "GetCapacity": {C.INVALID_ARGUMENT, C.ABORTED},
}
READ_ONLY = {"ListVolumes", "ListSnapshots", "ValidateVolumeCapabilities", "NodeGetVolumeStats", "GetCapacity"}
BACKUP_DIR = "/etc/lvm/backup"


def cheap_state() -> tuple[Any, ...]:
    """Mounts, device-mapper devices (name and size) and each VG's metadata backup, read from files."""
    with open("/proc/self/mountinfo", "rb") as f:
        mounts = f.read()
    dms = []
    for dev in sorted(d for d in os.listdir("/sys/block") if d.startswith("dm-")):
        try:
            with open(f"/sys/block/{dev}/dm/name") as f1, open(f"/sys/block/{dev}/size") as f2:
                dms.append((dev, f1.read().strip(), f2.read().strip()))
        except FileNotFoundError:  # removed between listdir and open: a change all the same
            dms.append((dev, "", ""))
    backups = []
    for vg in sorted(os.listdir(BACKUP_DIR)):
        with open(os.path.join(BACKUP_DIR, vg), "rb") as f:
            backups.append((vg, hashlib.sha256(f.read()).hexdigest()))
    return mounts, tuple(dms), tuple(backups)


def _lines(argv: list[str]) -> list[str]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def full_state() -> tuple[list[str], ...]:
    """What the issue asks to stay unchanged: lvs, vgs and findmnt (slow under TCG: a few per run)."""
    lvs = _lines(["lvs", "-a", "--noheadings", "-o", "vg_name,lv_name,lv_size,lv_attr,lv_tags"])
    vgs = _lines(["vgs", "--noheadings", "-o", "vg_name,vg_seqno,vg_free,lv_count"])
    mounts = _lines(["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS"])
    return lvs, vgs, mounts


def describe(request: Any, limit: int = 600) -> str:
    text = " ".join(str(request).split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def diff(before: tuple[Any, ...], after: tuple[Any, ...]) -> list[str]:
    parts = []
    for label, old, new in zip(("mounts", "dm devices", "lvm metadata"), before, after, strict=True):
        if old == new:
            continue
        if isinstance(old, bytes):
            old_set = set(old.decode(errors="replace").splitlines())
            new_set = set(new.decode(errors="replace").splitlines())
        else:
            old_set, new_set = set(map(str, old)), set(map(str, new))
        parts.append(f"{label}: gone {sorted(old_set - new_set)[:3]}, new {sorted(new_set - old_set)[:3]}")
    return parts


@dataclass
class Fuzzer:
    stubs: dict[str, Any]
    grammar: Grammar
    timeout: float
    verify_every: int
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    verified: int = 0

    def call(self, rpc: str, request: Any) -> tuple[grpc.StatusCode, str, Any]:
        try:
            return C.OK, "", getattr(self.stubs[rpc], rpc)(request, timeout=self.timeout)
        except grpc.RpcError as error:
            return error.code(), error.details() or "", None

    def fail(self, index: int, rpc: str, request: Any, kind: str, detail: str) -> None:
        self.failures.append({"index": index, "rpc": rpc, "kind": kind, "detail": detail[:1500],
                              "request": describe(request)})  # fmt: skip

    def run(self, requests: int) -> None:
        baseline = cheap_state()
        full, full_cheap = full_state(), baseline
        for index in range(requests):
            rpc, request = self.grammar.request()
            code, message, response = self.call(rpc, request)
            self.codes[f"{rpc} {code.name}"] += 1
            if code is not C.OK and code not in ALLOWED[rpc]:
                self.fail(index, rpc, request, "code", f"{code.name}: {message}")
            if code is not C.OK and not message.strip():
                self.fail(index, rpc, request, "message", f"{code.name} without a message")
            after = cheap_state()
            if after != baseline and (code is not C.OK or rpc in READ_ONLY):
                changes = "; ".join(diff(baseline, after))
                self.fail(index, rpc, request, "state", f"{code.name}: {message[:300]}; {changes}")
            if code is C.OK:
                self.track(rpc, request, response)
            baseline = after
            if self.verify_every and (index + 1) % self.verify_every == 0:
                full, full_cheap = self.verify(index, full, full_cheap, baseline)
        self.verify(requests, full, full_cheap, baseline)

    def verify(self, index: int, full: Any, full_cheap: Any, cheap: Any) -> tuple[Any, Any]:
        """The cheap check's own check: where it saw no change since the last full look, lvs, vgs and
        findmnt must agree, and the backups' seqno must be the VGs'."""
        now = full_state()
        self.verified += 1
        if cheap == full_cheap and now != full:
            self.fail(index, "verify", "", "blind spot", f"lvs/vgs/findmnt changed unseen: {now} != {full}")
        for line in now[1]:
            vg, seqno = line.split()[:2]
            path = os.path.join(BACKUP_DIR, vg)
            with open(path) as f:
                if f"seqno = {seqno}\n" not in f.read():
                    self.fail(index, "verify", "", "blind spot", f"{path} is not at seqno {seqno}")
        return now, cheap

    def track(self, rpc: str, request: Any, response: Any) -> None:
        pools = self.grammar.pools
        if rpc == "CreateVolume":
            volume_id = response.volume.volume_id
            if volume_id not in pools.volumes:
                pools.volumes.append(volume_id)
            pools.names.append(request.name)
        elif rpc == "DeleteVolume":
            pools.volumes[:] = [v for v in pools.volumes if v != request.volume_id]
            pools.published[:] = [p for p in pools.published if p[0] != request.volume_id]
        elif rpc == "CreateSnapshot":
            if response.snapshot.snapshot_id not in pools.snapshots:
                pools.snapshots.append(response.snapshot.snapshot_id)
            pools.names.append(request.name)
        elif rpc == "DeleteSnapshot":
            pools.snapshots[:] = [s for s in pools.snapshots if s != request.snapshot_id]
        elif rpc == "NodePublishVolume" and (request.volume_id, request.target_path) not in pools.published:
            pools.published.append((request.volume_id, request.target_path))
        elif rpc == "NodeUnpublishVolume":
            pools.published[:] = [p for p in pools.published if p[1] != request.target_path]

    def cleanup(self) -> list[str]:
        """Unpublish, delete snapshots, delete volumes: every answer must be OK."""
        pools = self.grammar.pools
        errors = []
        steps: list[tuple[str, Any]] = [
            ("NodeUnpublishVolume", csi_pb2.NodeUnpublishVolumeRequest(volume_id=v, target_path=t))
            for v, t in pools.published
        ]
        steps += [("DeleteSnapshot", csi_pb2.DeleteSnapshotRequest(snapshot_id=s)) for s in pools.snapshots]
        steps += [("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=v)) for v in pools.volumes]
        for rpc, request in steps:
            code, message, _ = self.call(rpc, request)
            if code is not C.OK:
                errors.append(f"{rpc} {describe(request, 200)}: {code.name}: {message}")
        return errors


def make_links() -> None:
    os.makedirs(VICTIM_DIR, exist_ok=True)
    os.makedirs(LINK_DIR, exist_ok=True)
    targets = (VICTIM_DIR, "/etc", "/nonexistent/csi-fuzz", LINKS[3])
    for link, target in zip(LINKS, targets, strict=True):
        if not os.path.islink(link):
            os.symlink(target, link)


def vg_free(vg: str) -> int:
    out = subprocess.run(["vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_free", vg],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1:10000")
    parser.add_argument("--node-id", default="node-1")
    parser.add_argument("--thick-vg", required=True)
    parser.add_argument("--thin-vg", required=True)
    parser.add_argument("--thin-pool", required=True)
    parser.add_argument("--verify-every", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    make_links()
    pools = Pools(args.thick_vg, args.thin_vg, args.thin_pool, args.node_id)
    pools.vg_free = {vg: vg_free(vg) for vg in (args.thick_vg, args.thin_vg)}
    channel = grpc.insecure_channel(args.address, options=[("grpc.max_receive_message_length", 64 * 1024**2)])
    grpc.channel_ready_future(channel).result(timeout=30)
    controller, node = services.controller_stub(channel), services.node_stub(channel)
    stubs = {rpc: node if rpc.startswith("Node") else controller for rpc in ALLOWED}
    rng = random.Random(args.seed)  # noqa: S311 - replayable, not secret
    fuzzer = Fuzzer(stubs, Grammar(rng, pools), args.timeout, args.verify_every)
    started = time.monotonic()
    fuzzer.run(args.requests)
    elapsed = time.monotonic() - started
    leftovers = {"volumes": len(pools.volumes), "snapshots": len(pools.snapshots), "published": len(pools.published)}
    cleanup_errors = fuzzer.cleanup()
    report = {
        "seed": args.seed,
        "requests": args.requests,
        "seconds": round(elapsed, 1),
        "codes": dict(sorted(fuzzer.codes.items())),
        "failures": fuzzer.failures,
        "full_checks": fuzzer.verified,
        "alive_at_end": leftovers,
        "cleanup_errors": cleanup_errors,
        "state_after_cleanup": full_state()[0],
    }
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
