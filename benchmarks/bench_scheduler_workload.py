"""The pods of bench_scheduler.py, and when the scheduler decided each of them.

A pod with a localcsi PVC counts as decided when its PVC gets ``volume.kubernetes.io/selected-node``
(no provisioner runs, so it then waits in PreBind); a pod without volumes when it is bound
(``spec.nodeName``; no kubelet runs it). Both are read from watches: polling lists of hundreds of
objects would take the apiserver's CPU itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from localcsi.k8s.rest import KubeApi, resource_path
from localcsi.testing.waiting import wait_for
from localcsi.webhook import CAPACITY_RESOURCE

SELECTED_NODE = "volume.kubernetes.io/selected-node"
PAUSE = "registry.k8s.io/pause:3.10"
WATCH_SECONDS = 600
CREATING_THREADS = 4


@dataclass(frozen=True)
class Workload:
    """``pods`` pods of which every ``1 / localcsi_share``-th has one 1 GiB PVC of ``storage_class``,
    interleaved so that the scheduler's queue (creation order) meets them spread through the backlog.
    ``marked``: those pods carry the webhook's mark, a request and limit of ``localcsi.io/capacity: 1``
    (the patch `localcsi webhook` applies; the benchmark writes it itself because admission happens
    before the timed part)."""

    pods: int
    localcsi_share: float
    marked: bool
    storage_class: str

    def uses_localcsi(self, index: int) -> bool:
        if self.localcsi_share <= 0:
            return False
        every = round(1 / self.localcsi_share)
        return index % every == 0

    def pod(self, index: int) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "app", "image": PAUSE}
        spec: dict[str, Any] = {"containers": [container]}
        if self.uses_localcsi(index):
            spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": f"data-{index}"}}]
            if self.marked:
                mark = {CAPACITY_RESOURCE: "1"}
                container["resources"] = {"requests": mark, "limits": dict(mark)}
        return {"metadata": {"name": f"app-{index}"}, "spec": spec}

    def claim(self, index: int) -> dict[str, Any]:
        spec = {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": self.storage_class,
            "resources": {"requests": {"storage": "1Gi"}},
        }
        return {"metadata": {"name": f"data-{index}"}, "spec": spec}

    def create(self, core: client.CoreV1Api, namespace: str) -> None:
        """The namespace, every PVC, then every pod (a pod whose PVC is missing would wait for it)."""
        core.create_namespace({"metadata": {"name": namespace}})
        claims = [index for index in range(self.pods) if self.uses_localcsi(index)]
        with ThreadPoolExecutor(CREATING_THREADS) as pool:
            list(pool.map(lambda i: core.create_namespaced_persistent_volume_claim(namespace, self.claim(i)), claims))
            list(pool.map(lambda i: core.create_namespaced_pod(namespace, self.pod(i)), range(self.pods)))


class Decisions:
    """When each pod of a namespace was decided, by its index, from a watch of PVCs and one of pods (with
    localcsi's own client: raw JSON, no model object per event)."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.times: dict[str, float] = {}
        self.errors: list[Exception] = []
        self._lock = threading.Lock()
        claims = resource_path("", "v1", "persistentvolumeclaims", namespace=namespace)
        pods = resource_path("", "v1", "pods", namespace=namespace)
        self._threads = [
            self._start(api, claims, self._claim_decision),
            self._start(api, pods, self._pod_decision),
        ]

    def _start(self, api: KubeApi, path: str, decision: Callable[[dict[str, Any]], str]) -> threading.Thread:
        _, since = api.list(path)
        thread = threading.Thread(target=self._watch, args=(api, path, since, decision), daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _claim_decision(found: dict[str, Any]) -> str:
        metadata = found.get("metadata") or {}
        if SELECTED_NODE in (metadata.get("annotations") or {}):
            return str(metadata.get("name", "")).removeprefix("data-")
        return ""

    @staticmethod
    def _pod_decision(found: dict[str, Any]) -> str:
        if (found.get("spec") or {}).get("nodeName"):
            return str((found.get("metadata") or {}).get("name", "")).removeprefix("app-")
        return ""

    def _watch(self, api: KubeApi, path: str, since: str, decision: Callable[[dict[str, Any]], str]) -> None:
        try:
            while True:  # a watch may end early; go on from the last version seen, as informers do
                for event in api.watch(path, since, WATCH_SECONDS):
                    metadata = event.object.get("metadata") or {}
                    since = str(metadata.get("resourceVersion") or since)
                    index = decision(event.object)
                    if index:
                        with self._lock:
                            self.times.setdefault(index, time.monotonic())
        except Exception as error:  # the apiserver stops at the end while the watch still runs
            self.errors.append(error)

    def window(self, pods: int) -> tuple[float, float]:
        """The monotonic times of the first and the last decision, once all ``pods`` are decided."""
        wait_for(f"{pods} scheduling decisions", lambda: self._all_decided(pods), WATCH_SECONDS, 0.05, self._progress)
        decided = sorted(self.times.values())
        return decided[0], decided[-1]

    def _all_decided(self, pods: int) -> bool:
        if len(self.times) < pods and not all(thread.is_alive() for thread in self._threads):
            raise RuntimeError(f"a watch ended: {self._progress()}")
        return len(self.times) >= pods

    def _progress(self) -> str:
        return f"{len(self.times)} decided (watch errors: {self.errors!r})"
