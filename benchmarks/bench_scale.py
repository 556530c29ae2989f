#!/usr/bin/env python3
"""One node at scale: the plugin in the node VM taken to VOLUMES volumes (half thick, half thin) and back.

    python benchmarks/bench_scale.py [--volumes 1000] [--sample 10] [--publish 50]

Root and qemu needed. Everything is timed inside the guest (benchmarks/guest_scale.py), so the
host-guest link is not measured. Prints, for the goals of issue 16:
- CreateVolume and DeleteVolume p50 and p99 with SAMPLE volumes on the node and with VOLUMES, and their
  ratio (flat means about 1);
- the baseline in the same run: bare lvcreate and lvremove of the same size and kind, timed in the same
  VM at both points, and CreateVolume's (DeleteVolume's) p50 and p99 over lvm2's: what lvm2's own
  metadata growth explains;
- ListVolumes paged by 100 over every volume;
- PUBLISH raw block publishes and unpublishes at VOLUMES;
- one agent discovery cycle's commands with few volumes and with VOLUMES (constant is the goal), run in
  a process of its own, and that process's RSS after the cycle (goal: at most 60 MiB);
- the plugin's RSS at the start, at VOLUMES and after the deletes (goal: at most 60 MiB).
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
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

THICK_VG, THIN_VG, POOL = "localcsi-scale-thick", "localcsi-scale-thin", "pool0"
RSS_GOAL_MIB = 60
GUEST_LOG = "/var/log/localcsi-guest-scale.log"
PROGRESS_SECONDS = 10


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def percentiles(times: dict[str, float]) -> str:
    return f"p50 {ms(times['p50'])}, p99 {ms(times['p99'])}"


def over(plugin: dict[str, float], lvm: dict[str, float]) -> str:
    """The plugin's p50 and p99 over lvm2's bare command's."""
    return f"{plugin['p50'] / lvm['p50']:.2f} / {plugin['p99'] / lvm['p99']:.2f}"


def growth(many: dict[str, float], few: dict[str, float]) -> str:
    return f"{many['p50'] / few['p50']:.2f} / {many['p99'] / few['p99']:.2f}"


def timing_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, at few, at VOLUMES, growth p50 / p99) for the calls and their lvm2 baselines."""
    few, many = result["create_few"], result["create_many"]
    rows = [
        ("CreateVolume", few["plugin"], many["plugin"]),
        ("bare lvcreate", few["lvcreate"], many["lvcreate"]),
        ("DeleteVolume", result["delete_few"], result["delete_many"]),
        ("bare lvremove", few["lvremove"], many["lvremove"]),
    ]
    table = [
        (name, percentiles(at_few), percentiles(at_many), growth(at_many, at_few)) for name, at_few, at_many in rows
    ]
    table += [
        ("CreateVolume / lvcreate", over(few["plugin"], few["lvcreate"]), over(many["plugin"], many["lvcreate"]), ""),
        ("DeleteVolume / lvremove", over(result["delete_few"], few["lvremove"]),
         over(result["delete_many"], many["lvremove"]), ""),
    ]  # fmt: skip
    return table


def report(result: dict[str, Any]) -> None:
    volumes, sample = result["volumes"], result["create_few"]["plugin"]["count"]
    print(f"| {sample} timed calls | with few volumes | with {volumes} | growth p50 / p99 |")
    print("|---|---|---|---|")
    for row in timing_rows(result):
        print(f"| {' | '.join(row)} |")
    bulk = result["bulk_create"]
    print(f"bulk create of {bulk['count']} by 4 callers: {bulk['wall']:.0f} s, {percentiles(bulk)}")
    listing = result["list"]
    print(f"ListVolumes by 100: {listing['entries']} entries in {listing['pages']} pages, {listing['wall']:.2f} s")
    for operation in ("publish", "unpublish"):
        print(f"{operation} (block) x{result[operation]['count']} at {volumes}: {percentiles(result[operation])}")
    for name in ("cycle_few", "cycle_many"):
        cycle, rss = result[name], result[name]["rss_kib"]
        print(
            f"agent cycle with {cycle['logical_volumes']} LVs: {cycle['commands']} commands "
            f"({cycle['lvm_commands']} lvm2), {cycle['seconds']:.2f} s; its process's RSS {mib(rss['VmRSS'])} "
            f"(peak {mib(rss['VmHWM'])})"
        )
    start, end, after = result["rss_kib_at_start"], result["rss_kib_at_volumes"], result["rss_kib_at_end"]
    print(
        f"plugin RSS: {mib(start['VmRSS'])} at start, {mib(end['VmRSS'])} at {volumes} (peak {mib(end['VmHWM'])}), "
        f"{mib(after['VmRSS'])} after the deletes (peak {mib(after['VmHWM'])}); goal at most {RSS_GOAL_MIB} MiB"
    )
    print(f"transparent huge pages in the guest: {result['transparent_hugepage']}")
    for when, memory in (("at start", start), (f"at {volumes}", end), ("after the deletes", after)):
        print(
            f"plugin {when}: anonymous {mib(memory['RssAnon'])} (malloc main arena {mib(memory['malloc_main'])}, "
            f"thread arenas {mib(memory['malloc_threads'])}, thread stacks {mib(memory['thread_stacks'])}, "
            f"other {mib(memory['other'])}; of all these, huge pages {mib(memory['huge_pages'])}), "
            f"files {mib(memory['RssFile'])}; {memory['threads']} threads"
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
        for name in ("guest_scale.py", "guest_agent_cycle.py"):  # the second runs beside the first
            vm.guest.put(f"/opt/localcsi/{name}", (Path(__file__).parent / name).read_bytes())
        argv = ["python3", script, THICK_VG, THIN_VG, POOL, UNIX_ENDPOINT.removeprefix("unix://"), str(plugin.pid),
                str(args.volumes), str(args.sample), str(args.publish)]  # fmt: skip
        pid = vm.guest.spawn(argv, log=GUEST_LOG, env={"PYTHONPATH": GUEST_SITE})
        result = follow(vm, pid)
        plugin.stop()
    report(result)
    goals = {
        "plugin RSS": result["rss_kib_at_volumes"]["VmRSS"] <= RSS_GOAL_MIB * 1024,
        "agent RSS": result["cycle_many"]["rss_kib"]["VmRSS"] <= RSS_GOAL_MIB * 1024,
        "constant agent cycle": result["cycle_many"]["commands"] == result["cycle_few"]["commands"],
    }
    print("goals: " + "; ".join(f"{name} {'met' if met else 'NOT met'}" for name, met in goals.items()))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
