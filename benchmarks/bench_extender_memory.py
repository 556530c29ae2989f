#!/usr/bin/env python3
"""Memory of the scheduler extender at scale: RSS with N nodes, M bound PVCs and their pods cached.

    python benchmarks/bench_extender_memory.py [--nodes 5000] [--pvcs 10000] [--requests 200]

The objects go into the extender's cache as its informers would feed them (NodeLocalStorage per
node; per claim a bound PVC, its localcsi PV and the running pod using it), then REQUESTS pods with
two pending claims each are filtered and prioritized over every node. RSS (VmRSS) is read after the
imports, after the cache is full, and after the requests; the goal (issue 16) is at most 150 MiB at
5000 nodes and 10,000 PVCs. Runs in one process, with no apiserver.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

from bench_extender import claim, node_local_storage, pod  # benchmarks/, the script's own directory

from localcsi import DRIVER_NAME
from localcsi.extender.cache import (
    NODE_LOCAL_STORAGES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
)
from localcsi.extender.main import settle_garbage_collector
from localcsi.extender.service import Extender
from localcsi.memory import pin_mmap_threshold

GOAL_MIB = 150
MIB = 1024 * 1024


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def bound(index: int, node: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A bound claim, its PV on ``node`` and the running pod that uses it."""
    pvc = claim(f"app-{index}", 0)
    pv_name = f"pvc-{pvc['metadata']['uid']}"
    pvc["spec"]["volumeName"] = pv_name
    pvc["status"] = {"phase": "Bound", "capacity": {"storage": "5Gi"}}
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "csi": {
                "driver": DRIVER_NAME,
                "volumeHandle": f"{node}/localcsi-ssd/csi-{index:032x}",
                "volumeAttributes": {"vgName": "localcsi-ssd"},
            },
            "claimRef": {"namespace": "bench", "name": pvc["metadata"]["name"]},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.localcsi.io/node", "operator": "In", "values": [node]},
            ]}]}},
        },
        "status": {"phase": "Bound"},
    }  # fmt: skip
    running = pod(f"app-{index}", [pvc])
    running["spec"]["nodeName"] = node
    running["status"] = {"phase": "Running"}
    return pvc, pv, running


def run(nodes: int, pvcs: int, requests: int) -> dict[str, float]:
    gc.collect()
    start = rss_mib()
    extender = Extender()
    extender.apply(STORAGE_CLASSES, "ADDED", {"metadata": {"name": "localcsi"}, "provisioner": DRIVER_NAME})
    names = [f"node-{i:05d}" for i in range(nodes)]
    for index, name in enumerate(names):
        extender.apply(NODE_LOCAL_STORAGES, "ADDED", node_local_storage(name, index))
    for index in range(pvcs):
        pvc, pv, running = bound(index, names[index % nodes])
        extender.apply(PERSISTENT_VOLUMES, "ADDED", pv)
        extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", pvc)
        extender.apply(PODS, "ADDED", running)
    settle_garbage_collector()
    loaded = rss_mib()
    started = time.monotonic()
    for number in range(requests):
        claims = [claim(f"new-{number}", i) for i in range(2)]
        for c in claims:
            extender.apply(PERSISTENT_VOLUME_CLAIMS, "ADDED", c)
        new_pod = pod(f"new-{number}", claims)
        passed = extender.filter(new_pod, names).passed
        extender.prioritize(new_pod, passed)
    seconds = time.monotonic() - started
    gc.collect()
    return {"start": start, "loaded": loaded, "after": rss_mib(), "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pvcs", type=int, default=10_000, help="bound claims (each with its PV and pod)")
    parser.add_argument("--requests", type=int, default=200, help="pods filtered and prioritized after loading")
    args = parser.parse_args()
    pin_mmap_threshold()  # as every component does at start (localcsi.cli.main)
    result = run(args.nodes, args.pvcs, args.requests)
    print(f"{args.nodes} nodes, {args.pvcs} bound PVCs with PVs and pods, {args.requests} filter+prioritize")
    print(f"  RSS after imports  {result['start']:7.1f} MiB")
    print(f"  RSS cache loaded   {result['loaded']:7.1f} MiB")
    print(f"  RSS after requests {result['after']:7.1f} MiB  (goal <= {GOAL_MIB} MiB)")
    print(f"  requests took {result['seconds']:.1f}s")
    return 0 if result["after"] <= GOAL_MIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
