#!/usr/bin/env python3
"""Scheduling throughput of the real kube-scheduler with the localcsi extender against the same
kube-scheduler without it, in one run on one real apiserver (etcd and kube-apiserver on loopback).

    python benchmarks/bench_scheduler.py [--nodes 100] [--pods 200] [--rounds 2] [--floors]

Each pod has one WaitForFirstConsumer PVC of our driver. A pod counts as scheduled when a watch
sees its PVC get `volume.kubernetes.io/selected-node`, the scheduler's decision (no provisioner
runs, so pods stay in PreBind; the time measured is the scheduling cycle, extender calls included).
Each round
creates its pods first and then starts a kube-scheduler (with or without the extender) to work
through them. Rounds alternate baseline and extender so that growing caches do not favour either side.

With --floors, two more sides run in the same rounds: a Go extender that does nothing
(benchmarks/noop_extender/main.go: what the extender protocol itself costs kube-scheduler, two HTTP
calls per pod in any language) and localcsi's HTTP server in front of an extender that does nothing
(benchmarks/noop_extender.py: what Python and the server cost, apart from the extender's work).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client

from localcsi import DRIVER_NAME
from localcsi.k8s.resources import stream_events
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.extender import ExtenderProcess
from localcsi.testing.scheduler import KubeScheduler
from localcsi.testing.storage_nodes import GIB, add_storage_node
from localcsi.testing.vm import free_port
from localcsi.testing.waiting import wait_for

HERE = Path(__file__).resolve().parent
SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_CLASS = "localcsi-bench"
WATCH_SECONDS = 600


class Decisions:
    """When each PVC of a namespace got ``selected-node``, from a watch (polling lists of hundreds of
    PVCs would itself take the apiserver's CPU, from both sides alike but not in proportion)."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.times: dict[str, float] = {}
        self.error: Exception | None = None
        self._core = core
        self._namespace = namespace
        self._since = core.list_namespaced_persistent_volume_claim(namespace).metadata.resource_version
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        since = self._since
        try:
            while True:  # a watch may end early; go on from the last version seen, as informers do
                events = stream_events(
                    self._core.list_namespaced_persistent_volume_claim, since, WATCH_SECONDS, namespace=self._namespace
                )
                for event in events:
                    metadata = event.object.get("metadata") or {}
                    since = str(metadata.get("resourceVersion") or since)
                    if SELECTED_NODE in (metadata.get("annotations") or {}):
                        self.times.setdefault(str(metadata.get("name")), time.monotonic())
        except Exception as error:  # the apiserver stops at the end while the watch still runs
            self.error = error

    def rate(self, pods: int) -> float:
        """Pods per second from the first decision to the last, once all ``pods`` are decided."""
        wait_for(f"{pods} scheduling decisions", lambda: self._all_decided(pods), WATCH_SECONDS, 0.05, self._progress)
        decided = sorted(self.times.values())
        return (pods - 1) / (decided[-1] - decided[0])

    def _all_decided(self, pods: int) -> bool:
        if len(self.times) < pods and not self._thread.is_alive():
            raise RuntimeError(f"the watch ended: {self._progress()}")
        return len(self.times) >= pods

    def _progress(self) -> str:
        return f"{len(self.times)} decided (watch error: {self.error!r})"


def schedule_round(cluster: KubeCluster, namespace: str, pods: int, extender_url: str | None) -> tuple[float, str]:
    """Pods per second one kube-scheduler reaches on ``pods`` pods created before it starts, and the
    mean time per verb inside the extender's server if it is localcsi's.

    The pods wait, all of them, before the scheduler runs, so neither the pace of creating them (one
    Python client) nor the scheduler's start-up is measured: the rate is counted from the first
    decision to the last.
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
    decisions = Decisions(core, namespace)
    before = server_seconds(extender_url)
    with KubeScheduler(cluster, extender_url=extender_url):
        rate = decisions.rate(pods)
    inside = describe_server_time(before, server_seconds(extender_url))
    # Unscheduled pods are deleted at once (no kubelet); the PVCs stay Terminating, which is harmless.
    core.delete_collection_namespaced_pod(namespace)
    return rate, inside


def server_seconds(url: str | None) -> dict[str, tuple[float, float]]:
    """Per verb, the (sum, count) of localcsi's extender server's own request timings."""
    if url is None:
        return {}
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310 (http on loopback)
            text = response.read().decode()
    except urllib.error.HTTPError:  # not localcsi's server (the Go no-op extender)
        return {}
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, at in (("_sum", 0), ("_count", 1)):
            prefix = f'localcsi_extender_request_seconds{suffix}{{verb="'
            if line.startswith(prefix):
                verb, _, value = line[len(prefix) :].partition('"} ')
                found.setdefault(verb, [0.0, 0.0])[at] = float(value)
    return {verb: (total, count) for verb, (total, count) in found.items()}


def describe_server_time(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> str:
    parts = []
    for verb, (total, count) in sorted(after.items()):
        old_total, old_count = before.get(verb, (0.0, 0.0))
        if count > old_count:
            parts.append(f"{verb} {(total - old_total) / (count - old_count) * 1000:.2f} ms")
    return f" (inside the server: {', '.join(parts)})" if parts else ""


@contextmanager
def floor_extender(argv: list[str], port: int) -> Iterator[str]:
    """A no-op extender process on ``port``, answering /healthz, for the length of the block."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{argv[0]} to answer /healthz", lambda: _healthy(proc, url), 30, 0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _healthy(proc: subprocess.Popen[bytes], url: str) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 (http on loopback)
            return True
    except OSError:
        return False


def go_binary() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise RuntimeError("--floors needs Go to build benchmarks/noop_extender")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side, alternating")
    parser.add_argument("--floors", action="store_true", help="also run no-op Go and Python extenders")
    args = parser.parse_args()
    sides = ["baseline", "extender"] + (["go-noop", "python-noop"] if args.floors else [])
    with tempfile.TemporaryDirectory() as scratch, KubeCluster() as cluster:
        floors: dict[str, list[str]] = {}
        if args.floors:
            go_noop = str(Path(scratch) / "noop_extender")
            subprocess.run([go_binary(), "build", "-o", go_noop, str(HERE / "noop_extender" / "main.go")], check=True)
            floors = {"go-noop": [go_noop], "python-noop": [sys.executable, str(HERE / "noop_extender.py")]}
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
        results: dict[str, list[float]] = {side: [] for side in sides}
        try:
            for round_index in range(args.rounds):
                for side in sides:
                    namespace = f"bench-{side}-{round_index}"
                    if side in floors:
                        port = free_port()
                        argv = [*floors[side], f"127.0.0.1:{port}"]
                        with floor_extender(argv, port) as floor_url:
                            rate, inside = schedule_round(cluster, namespace, args.pods, floor_url)
                    else:
                        rate, inside = schedule_round(
                            cluster, namespace, args.pods, extender.url if side == "extender" else None
                        )
                    results[side].append(rate)
                    print(f"round {round_index} {side:11s}: {rate:.1f} pods/s{inside}", flush=True)
        finally:
            extender.stop()
    baseline = statistics.mean(results["baseline"])
    print(f"nodes={args.nodes} pods/round={args.pods}, mean of {args.rounds} rounds:")
    for side in sides:
        rate = statistics.mean(results[side])
        goal = " (goal >= 0.8)" if side == "extender" else ""
        print(f"  {side:11s} {rate:7.1f} pods/s  ratio {rate / baseline:.2f}{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
