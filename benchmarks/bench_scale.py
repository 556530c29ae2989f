#!/usr/bin/env python3
"""One node at scale: the plugin in the node VM taken to VOLUMES volumes (half thick, half thin) and back.

    python benchmarks/bench_scale.py [--volumes 1000] [--sample 10] [--publish 50]

Root and qemu needed. Everything is timed inside the guest (benchmarks/guest_scale.py), so the
host-guest link is not measured. Prints, for the goals of issue 16:
- CreateVolume and DeleteVolume p50 and p99 with SAMPLE volumes on the node and with VOLUMES, and their
  ratio (flat means about 1);
- ListVolumes paged by 100 over every volume;
- PUBLISH raw block publishes and unpublishes at VOLUMES;
- one agent discovery cycle's commands with few volumes and with VOLUMES (constant is the goal);
- the plugin's RSS at the start and at VOLUMES (goal: at most 60 MiB).
The baseline in the same run is the same plugin with SAMPLE volumes.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from typing import Any

from localcsi.testing.guest_plugin import UNIX_ENDPOINT, GuestPlugin
from localcsi.testing.install import GUEST_SITE, install_project, site_disk
from localcsi.testing.vm import NodeVM, VMConfig

THICK_VG, THIN_VG, POOL = "localcsi-scale-thick", "localcsi-scale-thin", "pool0"
RSS_GOAL_MIB = 60
GUEST_LOG = "/var/log/localcsi-guest-scale.log"
PROGRESS_SECONDS = 10


def ratio(many: dict[str, float], few: dict[str, float], key: str) -> str:
    return f"{many[key] / few[key]:.2f}"


def report(result: dict[str, Any]) -> None:
    volumes = result["volumes"]
    for operation in ("create", "delete"):
        few, many = result[f"{operation}_few"], result[f"{operation}_many"]
        print(
            f"{operation}: {few['count']} at few volumes p50 {few['p50'] * 1000:.0f} ms "
            f"p99 {few['p99'] * 1000:.0f} ms; "
            f"at {volumes} p50 {many['p50'] * 1000:.0f} ms p99 {many['p99'] * 1000:.0f} ms; "
            f"ratio p50 {ratio(many, few, 'p50')} p99 {ratio(many, few, 'p99')}"
        )
    bulk = result["bulk_create"]
    print(f"bulk create of {bulk['count']} by 4 callers: {bulk['wall']:.0f} s, p50 {bulk['p50'] * 1000:.0f} ms")
    listing = result["list"]
    print(f"ListVolumes by 100: {listing['entries']} entries in {listing['pages']} pages, {listing['wall']:.2f} s")
    for operation in ("publish", "unpublish"):
        times = result[operation]
        print(f"{operation} (block) x{times['count']} at {volumes}: p50 {times['p50'] * 1000:.0f} ms "
              f"p99 {times['p99'] * 1000:.0f} ms")  # fmt: skip
    few_cycle, many_cycle = result["cycle_few"], result["cycle_many"]
    print(
        f"agent cycle: {few_cycle['commands']} commands ({few_cycle['lvm_commands']} lvm2) "
        f"{few_cycle['seconds']:.2f} s with {few_cycle['logical_volumes']} LVs; {many_cycle['commands']} "
        f"({many_cycle['lvm_commands']} lvm2) {many_cycle['seconds']:.2f} s with {many_cycle['logical_volumes']}"
    )
    start, end = result["rss_kib_at_start"], result["rss_kib_at_volumes"]
    print(
        f"plugin RSS: {start['VmRSS'] / 1024:.1f} MiB at start, {end['VmRSS'] / 1024:.1f} MiB at {volumes} "
        f"(peak {end['VmHWM'] / 1024:.1f} MiB; goal at most {RSS_GOAL_MIB} MiB)"
    )


def follow(vm: NodeVM, pid: int) -> dict[str, Any]:
    """Print each phase as the guest script finishes it (a long run shows where it is), then return its
    result; the script's log is shown if it ends without one."""
    shown = 0
    while True:
        alive, rc = vm.guest.signal(pid, 0)
        text = vm.guest.get(GUEST_LOG).decode(errors="replace")
        complete = text[: text.rfind("\n") + 1]  # a line still being written waits for the next look
        lines = complete.splitlines()
        for line in lines[shown:]:
            record = json.loads(line) if line.startswith("{") else None
            if isinstance(record, dict) and "result" in record:
                return dict(record["result"])
            if isinstance(record, dict) and "phase" in record:
                print(f"[scale] {record['phase']}: {json.dumps(record['value'])}", flush=True)
        shown = len(lines)
        if not alive:
            raise RuntimeError(f"guest_scale.py ended (exit {rc}) without a result; its log:\n{text[-4000:]}")
        time.sleep(PROGRESS_SECONDS)


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so that the VM's context manager stops qemu instead of leaving it."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main() -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--publish", type=int, default=50)
    args = parser.parse_args()
    # 8 MiB each, half on each disk, and room to spare; the thin pool takes 90 % of its disk, since the
    # plugin keeps the virtual sizes within the pool (overprovisioning ratio 1 by default)
    gib = max(2, (args.volumes // 2 + 1) * 8 // 1024 + 2)
    with NodeVM(VMConfig(disks_gib=[gib, gib], site_disk=site_disk())) as vm:
        install_project(vm)
        thick_disk, thin_disk = vm.data_disks()
        vm.check(["vgcreate", "-y", THICK_VG, thick_disk])
        vm.check(["vgcreate", "-y", THIN_VG, thin_disk])
        vm.check(["lvcreate", "-y", "--type", "thin-pool", "-l", "90%VG", "-n", POOL, THIN_VG])
        plugin = GuestPlugin(vm, endpoint=UNIX_ENDPOINT).start()
        script = "/opt/localcsi/guest_scale.py"
        vm.guest.put(script, (Path(__file__).parent / "guest_scale.py").read_bytes())
        argv = ["python3", script, THICK_VG, THIN_VG, POOL, UNIX_ENDPOINT.removeprefix("unix://"), str(plugin.pid),
                str(args.volumes), str(args.sample), str(args.publish)]  # fmt: skip
        pid = vm.guest.spawn(argv, log=GUEST_LOG, env={"PYTHONPATH": GUEST_SITE})
        result = follow(vm, pid)
        plugin.stop()
    report(result)
    rss_met = result["rss_kib_at_volumes"]["VmRSS"] <= RSS_GOAL_MIB * 1024
    cycle_met = result["cycle_many"]["commands"] == result["cycle_few"]["commands"]
    print(f"goals: RSS {'met' if rss_met else 'NOT met'}; constant agent cycle {'met' if cycle_met else 'NOT met'}")
    return 0 if rss_met and cycle_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
