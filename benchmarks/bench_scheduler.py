#!/usr/bin/env python3
"""Scheduling throughput of the real kube-scheduler with the localcsi extender against the same
kube-scheduler without it, in one run on one real apiserver (etcd and kube-apiserver on loopback).

    python benchmarks/bench_scheduler.py [--nodes 100] [--pods 200] [--rounds 2]

Each pod has one WaitForFirstConsumer PVC of our driver. A pod counts as scheduled when its PVC
carries `volume.kubernetes.io/selected-node`, the scheduler's decision (no provisioner runs, so pods
stay in PreBind; the time measured is the scheduling cycle, extender calls included). Rounds
alternate baseline and extender so that growing caches do not favour either side.
"""

from __future__ import annotations

import argparse
import sys
import time

from kubernetes import client

from localcsi import DRIVER_NAME
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.extender import ExtenderProcess
from localcsi.testing.scheduler import KubeScheduler
from localcsi.testing.storage_nodes import GIB, add_storage_node
from localcsi.testing.vm import free_port

SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_CLASS = "localcsi-bench"


def schedule_round(cluster: KubeCluster, namespace: str, pods: int) -> float:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": namespace}})
    for index in range(pods):
        core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": f"data-{index}"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
    start = time.monotonic()
    for index in range(pods):
        volume = {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{index}"}}
        container = {"name": "app", "image": "registry.k8s.io/pause:3.10"}
        core.create_namespaced_pod(
            namespace, {"metadata": {"name": f"app-{index}"}, "spec": {"containers": [container], "volumes": [volume]}}
        )
    while True:
        claims = core.list_namespaced_persistent_volume_claim(namespace).items
        done = sum(1 for c in claims if SELECTED_NODE in (c.metadata.annotations or {}))
        if done == pods:
            elapsed = time.monotonic() - start
            break
        if time.monotonic() - start > 600:
            raise RuntimeError(f"only {done}/{pods} pods scheduled after 600 s")
        time.sleep(0.05)
    # Unscheduled pods are deleted at once (no kubelet); the PVCs stay Terminating, which is harmless.
    core.delete_collection_namespaced_pod(namespace)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side, alternating")
    args = parser.parse_args()
    with KubeCluster() as cluster:
        storage = client.StorageV1Api(cluster.api_client())
        storage.create_storage_class(
            {
                "metadata": {"name": STORAGE_CLASS},
                "provisioner": DRIVER_NAME,
                "volumeBindingMode": "WaitForFirstConsumer",
                "parameters": {"volumeType": "LVM"},
            }
        )
        for index in range(args.nodes):
            add_storage_node(cluster, f"node-{index:04d}", {"localcsi-pool-0": 100_000 * GIB})
        extender = ExtenderProcess(cluster, free_port(), log_level="warning").start()
        results: dict[str, list[float]] = {"baseline": [], "extender": []}
        try:
            for round_index in range(args.rounds):
                for side in ("baseline", "extender"):
                    url = extender.url if side == "extender" else None
                    with KubeScheduler(cluster, extender_url=url):
                        elapsed = schedule_round(cluster, f"bench-{side}-{round_index}", args.pods)
                    results[side].append(elapsed)
                    print(f"round {round_index} {side:8s}: {args.pods} pods in {elapsed:.2f} s "
                          f"({args.pods / elapsed:.1f} pods/s)", flush=True)  # fmt: skip
        finally:
            extender.stop()
    baseline = args.pods * len(results["baseline"]) / sum(results["baseline"])
    with_extender = args.pods * len(results["extender"]) / sum(results["extender"])
    print(
        f"nodes={args.nodes} pods/round={args.pods}: baseline {baseline:.1f} pods/s, with extender "
        f"{with_extender:.1f} pods/s, ratio {with_extender / baseline:.2f} (goal >= 0.8)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
