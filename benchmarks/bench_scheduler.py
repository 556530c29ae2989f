#!/usr/bin/env python3
"""Scheduling throughput of the real kube-scheduler with the localcsi extender against the same
kube-scheduler without it, in one run on one real apiserver (etcd and kube-apiserver on loopback).

    python benchmarks/bench_scheduler.py [--nodes 100] [--pods 200] [--rounds 2]

Each pod has one WaitForFirstConsumer PVC of our driver. A pod counts as scheduled when its PVC
carries `volume.kubernetes.io/selected-node`, the scheduler's decision (no provisioner runs, so pods
stay in PreBind; the time measured is the scheduling cycle, extender calls included). Each round
creates its pods first and then starts a kube-scheduler (with or without the extender) to work
through them. Rounds alternate baseline and extender so that growing caches do not favour either side.
"""

from __future__ import annotations

import argparse
import statistics
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
POLL_SECONDS = 0.02


def schedule_round(cluster: KubeCluster, namespace: str, pods: int, extender_url: str | None) -> float:
    """Pods per second one kube-scheduler reaches on ``pods`` pods created before it starts.

    The pods wait, all of them, before the scheduler runs, so neither the pace of creating them (one
    Python client) nor the scheduler's start-up is measured: the rate is counted from the first
    decision seen to the last.
    """
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
    for index in range(pods):
        volume = {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{index}"}}
        container = {"name": "app", "image": "registry.k8s.io/pause:3.10"}
        core.create_namespaced_pod(
            namespace, {"metadata": {"name": f"app-{index}"}, "spec": {"containers": [container], "volumes": [volume]}}
        )
    with KubeScheduler(cluster, extender_url=extender_url):
        started = time.monotonic()
        first: tuple[float, int] | None = None
        while True:
            claims = core.list_namespaced_persistent_volume_claim(namespace).items
            now = time.monotonic()
            done = sum(1 for c in claims if SELECTED_NODE in (c.metadata.annotations or {}))
            if first is None and done:
                first = (now, done)
            if first is not None and done == pods and now > first[0]:
                rate = (pods - first[1]) / (now - first[0])
                break
            if now - started > 600:
                raise RuntimeError(f"only {done}/{pods} pods scheduled after 600 s")
            time.sleep(POLL_SECONDS)
    # Unscheduled pods are deleted at once (no kubelet); the PVCs stay Terminating, which is harmless.
    core.delete_collection_namespaced_pod(namespace)
    return rate


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
                    rate = schedule_round(cluster, f"bench-{side}-{round_index}", args.pods, url)
                    results[side].append(rate)
                    print(f"round {round_index} {side:8s}: {rate:.1f} pods/s", flush=True)
        finally:
            extender.stop()
    baseline = statistics.mean(results["baseline"])
    with_extender = statistics.mean(results["extender"])
    print(
        f"nodes={args.nodes} pods/round={args.pods}: baseline {baseline:.1f} pods/s, with extender "
        f"{with_extender:.1f} pods/s, ratio {with_extender / baseline:.2f} (goal >= 0.8)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
