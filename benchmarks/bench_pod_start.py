#!/usr/bin/env python3
"""Pod start with a localcsi volume against the same pod with an emptyDir, in one e2e environment run
(the Go-built control plane on loopback, the node VM as a real kubelet + containerd node, localcsi
installed by helm; root and qemu needed).

    python benchmarks/bench_pod_start.py [--pods 10] [--json]

Each round starts one pod of each kind, one after the other, and removes it again: (a) a PVC of
`localcsi-lvm` (256Mi, WaitForFirstConsumer) and a pod that mounts it, timed from creating the PVC
to the pod's Ready condition; then the PV and the LV are waited away; (b) the same pod with an
emptyDir, timed from creating the pod. Which kind goes first alternates from round to round. Ready
is seen by a watch on the host and timed with the host's monotonic clock (a condition's
lastTransitionTime has 1 s resolution). Prints p50, p90 and max of both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from localcsi.k8s.rest import KubeApi, resource_path
from localcsi.testing.e2e_env import POOL_VG, E2EEnvironment, storage_ready, storage_report
from localcsi.testing.waiting import wait_for

NAMESPACE = "bench-pod-start"
STORAGE_CLASS = "localcsi-lvm"
SIZE = "256Mi"
LOCALCSI = "localcsi"
EMPTY_DIR = "emptyDir"
KINDS = (LOCALCSI, EMPTY_DIR)
IMAGE_LABEL = "app.kubernetes.io/name=localcsi-node"
TIMEOUT = 300
WATCH_SECONDS = 600


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile, interpolated linearly between the closest ranks (numpy's default):
    p50 of an even count is the mean of the middle two, as statistics.median gives."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 0.5), "p90": percentile(samples, 0.9), "max": max(samples)}


def results(samples: dict[str, list[float]]) -> dict[str, Any]:
    """What --json prints: every sample (seconds, in round order), each kind's summary, the ratios."""
    summaries = {kind: summary(samples[kind]) for kind in KINDS}
    ratio = {key: summaries[LOCALCSI][key] / summaries[EMPTY_DIR][key] for key in summaries[LOCALCSI]}
    return {
        "pods": len(samples[LOCALCSI]),
        **{kind: {"samples": samples[kind], **summaries[kind]} for kind in KINDS},
        "ratio": ratio,
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"pod start to Ready, {result['pods']} pods of each kind", f"{'':10s} {'p50':>8} {'p90':>8} {'max':>8}"]
    for kind in KINDS:
        lines.append(f"{kind:10s}" + "".join(f" {result[kind][key]:>6.2f} s" for key in ("p50", "p90", "max")))
    lines.append(f"{'ratio':10s}" + "".join(f" {result['ratio'][key]:>8.2f}" for key in ("p50", "p90", "max")))
    return "\n".join(lines)


def pod_body(name: str, image: str, volume: dict[str, Any]) -> dict[str, Any]:
    """The e2e tests' workload pod, holding its volume mounted at /data until terminated."""
    container = {
        "name": "workload",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", "localcsi.testing.workload", "hold"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [container]}
    return {"metadata": {"name": name}, "spec": {**spec, "volumes": [{"name": "data", **volume}]}}


def pvc_body(name: str) -> dict[str, Any]:
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": STORAGE_CLASS,
        "resources": {"requests": {"storage": SIZE}},
    }
    return {"metadata": {"name": name}, "spec": spec}


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class ReadyTimes:
    """When a watch on the namespace's pods first saw each pod Ready (host monotonic seconds)."""

    def __init__(self, api: KubeApi) -> None:
        self.times: dict[str, float] = {}
        self.error: Exception | None = None
        self._api = api
        self._pods = resource_path("", "v1", "pods", namespace=NAMESPACE)
        _, since = api.list(self._pods)
        threading.Thread(target=self._watch, args=(since,), daemon=True).start()

    def _watch(self, since: str) -> None:
        try:
            while True:  # a watch may end early; go on from the last version seen
                for event in self._api.watch(self._pods, since, WATCH_SECONDS):
                    metadata = event.object.get("metadata") or {}
                    since = str(metadata.get("resourceVersion") or since)
                    if event.type != "DELETED" and is_ready(event.object):
                        self.times.setdefault(str(metadata.get("name")), time.monotonic())
        except Exception as error:  # the apiserver stops at the end while the watch still runs
            self.error = error

    def wait(self, name: str, context: Callable[[], str]) -> float:
        def seen() -> float | None:
            if self.error is not None:
                raise RuntimeError(f"the pod watch ended: {self.error!r}")
            return self.times.get(name)

        return wait_for(f"pod {name} Ready", seen, TIMEOUT, 0.02, context)


class Bench:
    def __init__(self, env: E2EEnvironment) -> None:
        self.env = env
        self.core = client.CoreV1Api(env.api)
        self.node = env.node_names[0]
        self.image = self._image()
        self.ready: ReadyTimes | None = None

    def _image(self) -> str:
        """The localcsi image, as the release runs it: it has Python and this package."""
        pods = self.core.list_namespaced_pod("localcsi-system", label_selector=IMAGE_LABEL).items
        return str(pods[0].spec.containers[0].image)

    def prepare(self) -> None:
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        wait_for("the default ServiceAccount", self._has_default_sa, 60, 0.5)
        self.ready = ReadyTimes(self.env.kube_api)

    def _has_default_sa(self) -> bool:
        return any(sa.metadata.name == "default" for sa in self.core.list_namespaced_service_account(NAMESPACE).items)

    def localcsi_round(self, index: int) -> float:
        name = f"vol-{index}"
        lvs_before = self.logical_volumes()
        started = time.monotonic()
        self.core.create_namespaced_persistent_volume_claim(NAMESPACE, pvc_body(name))
        self.core.create_namespaced_pod(
            NAMESPACE, pod_body(name, self.image, {"persistentVolumeClaim": {"claimName": name}})
        )
        elapsed = self._ready(name) - started
        pv = self.core.read_namespaced_persistent_volume_claim(name, NAMESPACE).spec.volume_name
        self.delete_pod(name)
        self.core.delete_namespaced_persistent_volume_claim(name, NAMESPACE)
        wait_for(f"PV {pv} gone", lambda: not exists(self.core.read_persistent_volume, pv), TIMEOUT, 0.2)
        wait_for(f"the LV of {pv} gone", lambda: self.logical_volumes() == lvs_before, TIMEOUT, 0.5)
        return elapsed

    def empty_dir_round(self, index: int) -> float:
        name = f"empty-{index}"
        started = time.monotonic()
        self.core.create_namespaced_pod(NAMESPACE, pod_body(name, self.image, {"emptyDir": {}}))
        elapsed = self._ready(name) - started
        self.delete_pod(name)
        return elapsed

    def _ready(self, name: str) -> float:
        assert self.ready is not None, "prepare() first"
        return self.ready.wait(name, lambda: self.events(name))

    def delete_pod(self, name: str) -> None:
        """Delete with the pod's grace period and wait until the kubelet has let it go (its volumes
        unmounted), so the next round starts on a quiet node."""
        self.core.delete_namespaced_pod(name, NAMESPACE)
        wait_for(f"pod {name} gone", lambda: not exists(self.core.read_namespaced_pod, name, NAMESPACE), TIMEOUT, 0.2)

    def logical_volumes(self) -> set[str]:
        out = self.env.node(self.node).run(["lvs", "--noheadings", "-o", "lv_name", POOL_VG]).check().stdout
        return set(out.split())

    def events(self, name: str) -> str:
        events = self.core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
        return "\n".join(f"{e.reason}: {e.message}" for e in events)


def exists(read: Callable[..., Any], *args: str) -> bool:
    try:
        read(*args)
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def run_rounds(rounds: dict[str, Callable[[int], float]], pods: int) -> dict[str, list[float]]:
    """``pods`` rounds of one sample of each kind; which kind goes first alternates, so that neither
    always follows the other's cleanup."""
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for index in range(pods):
        for kind in KINDS if index % 2 == 0 else KINDS[::-1]:
            samples[kind].append(rounds[kind](index))
            print(f"[bench] round {index} {kind}: {samples[kind][-1]:.2f}s", file=sys.stderr, flush=True)
    return samples


def benchmark(pods: int) -> tuple[dict[str, list[float]], float]:
    """The samples, and how long the environment took to start."""
    from localcsi.testing.e2e_vm import VMEnvironment  # noqa: PLC0415 - needs qemu and the Go tools
    from localcsi.testing.phases import Phases  # noqa: PLC0415

    started = time.monotonic()
    env = VMEnvironment(Phases(prefix="[bench]"))
    try:
        env.start()
        wait_for(
            "a non-zero CSIStorageCapacity on every node",
            lambda: storage_ready(env),
            300,
            2.0,
            lambda: storage_report(env),
        )
        setup = time.monotonic() - started
        bench = Bench(env)
        bench.prepare()
        return run_rounds({LOCALCSI: bench.localcsi_round, EMPTY_DIR: bench.empty_dir_round}, pods), setup
    finally:
        env.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10, help="pods of each kind")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the environment as on Ctrl-C
    started = time.monotonic()
    samples, setup = benchmark(args.pods)
    result = results(samples) | {"setup_seconds": setup, "run_seconds": time.monotonic() - started}
    print(json.dumps(result, indent=2) if args.json else table(result))
    print(f"[bench] environment {setup:.0f}s, whole run {result['run_seconds']:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
