#!/usr/bin/env python3
"""Scrape time of the agent's and the plugin's /metrics with many volumes, over their real HTTP server.

    python benchmarks/bench_metrics.py [--volumes 1000] [--scrapes 200]

The agent: a synthetic node (localcsi.testing.synthetic_storage) with VOLUMES volumes, half linear with a
thick snapshot every tenth, half thin in one pool, recorded as one cycle would record it; its /metrics then
has a series per volume (localcsi_volume_abnormal) besides those per VG and pool. The plugin: the CSI calls
and commands of creating, staging and publishing VOLUMES volumes counted by the real interceptor and
runner metrics (its label sets are bounded by CSI methods and programs, not by volumes), and VOLUMES
published volumes, each with a write limit and its four IO counters read at every scrape from a
diskstats file (in a temporary directory, standing in for /proc/diskstats). Each scrape is a GET on a new
connection (the server closes each after its reply, as HTTP/1.0 does) from a separate process, timed
from sending to having the whole body. Prints p50, p99 and max per component, and the time of
recording one agent cycle. The goal (issue 15): under 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from localcsi.core.iolimits import Throttle
from localcsi.core.nodestorage import parse_spec
from localcsi.driver.pod_limits import InForce, PodIoLimits
from localcsi.fs.types import DeviceNumber
from localcsi.metrics.agent import AgentCollector
from localcsi.metrics.commands import CommandMetrics, Outcome
from localcsi.metrics.http import ObservabilityServer
from localcsi.metrics.volumes import PhaseCollector, VolumeMetrics
from localcsi.plugin.io_limits import register_io_limit_metrics
from localcsi.plugin.rpc_metrics import RpcMetrics
from localcsi.testing.percentiles import nearest_rank
from localcsi.testing.synthetic_storage import SPEC, synthetic_inventory

GOAL_MS = 50.0
WARMUP = 10


def agent_registry(volumes: int) -> tuple[CollectorRegistry, float]:
    """The agent's registry after one cycle, and how long recording that cycle took (seconds)."""
    registry = CollectorRegistry()
    collector = AgentCollector("node-1", 60, registry=registry)
    inventory = synthetic_inventory(volumes)
    spec = parse_spec(SPEC)
    started = time.perf_counter()
    collector.record(inventory, spec, seconds=0.5, commands=3, lvm_commands=1, orphans=0)
    recorded = time.perf_counter() - started
    resources = {
        f"lv-{i}": {"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"kind": "Volume"},
                    "status": {"phase": "Ready"}}
        for i in range(volumes)
    }  # fmt: skip
    registry.register(PhaseCollector("node-1", lambda: resources))
    VolumeMetrics(registry)
    return registry, recorded


class PublishedVolumes(PodIoLimits):
    """What the plugin's last IO limits resync found, with no adapters behind it."""

    def __init__(self, in_force: InForce) -> None:
        self.in_force = in_force


def plugin_registry(volumes: int, diskstats: Path) -> CollectorRegistry:
    registry = CollectorRegistry()
    devices = tuple(("localcsi-pool", f"csi-{index}", DeviceNumber(253, index)) for index in range(volumes))
    # as the kernel lists them: the node's disk first, then each LV's device-mapper device
    disk = "   8       0 vda 9876 12 345678 100 4321 8 765432 200 0 300 300 0 0 0 0 0 0\n"
    lines = [f" 253 {device.minor:7d} dm-{device.minor} 120 0 2048 30 400 0 16384 900 0 1000 930 0 0 0 0 0 0\n"
             for _vg, _lv, device in devices]  # fmt: skip
    diskstats.write_text(disk + "".join(lines))
    limits = tuple((vg, lv, Throttle(write_bps=1048576)) for vg, lv, _device in devices)
    register_io_limit_metrics(PublishedVolumes(InForce(volumes, limits, devices)), registry, diskstats)
    rpc, commands = RpcMetrics(registry), CommandMetrics(registry)
    for index in range(volumes):
        for service, method in (("Controller", "CreateVolume"), ("Node", "NodeStageVolume"),
                                ("Node", "NodePublishVolume"), ("Node", "NodeGetVolumeStats")):  # fmt: skip
            rpc.observe(service, method, grpc.StatusCode.OK, 0.01 * (index % 50))
        for program in ("lvcreate", "lvs", "blkid", "mkfs.ext4", "mount"):
            commands.observe([program], 0.05, Outcome.OK)
    rpc.observe("Controller", "CreateVolume", grpc.StatusCode.RESOURCE_EXHAUSTED, 0.01)
    commands.observe(["lvcreate"], 0.1, Outcome.EXIT)
    return registry


def scraper(port: int, scrapes: int, pipe: Connection) -> None:
    """Prometheus's side, in its own process as in production: in one process, the client's reading
    of the body and the server's writing of it would take turns at one GIL."""
    times: list[float] = []
    size = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for index in range(WARMUP + scrapes):
        started = time.perf_counter()
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}")
        size = len(body)
        if index >= WARMUP:
            times.append(elapsed)
    conn.close()
    pipe.send((times, size))


def scrape_times(registry: CollectorRegistry, scrapes: int) -> tuple[list[float], int]:
    """Seconds of each scrape, and the size of the body."""
    server = ObservabilityServer("127.0.0.1:0", registry=registry)
    server.start()
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(target=scraper, args=(server.port, scrapes, theirs))
    try:
        process.start()
        times, size = ours.recv()
        process.join(timeout=30)
    finally:
        server.stop()
    return times, size


def report(name: str, times: list[float], size: int) -> bool:
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1000
    p99 = nearest_rank(ordered, 0.99) * 1000
    worst = ordered[-1] * 1000
    print(f"{name:>7}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {worst:6.2f} ms  ({size / 1024:.0f} KiB)")
    return p99 < GOAL_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0] if __doc__ else None)
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    agent, recorded = agent_registry(args.volumes)
    print(f"{args.volumes} volumes; one agent cycle recorded in {recorded * 1000:.1f} ms")
    met = report("agent", *scrape_times(agent, args.scrapes))
    with tempfile.TemporaryDirectory() as directory:
        diskstats = Path(directory) / "diskstats"
        met &= report("plugin", *scrape_times(plugin_registry(args.volumes, diskstats), args.scrapes))
    print(f"goal: p99 under {GOAL_MS:.0f} ms: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
