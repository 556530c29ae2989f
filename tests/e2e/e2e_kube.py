"""Objects and waits the e2e tests share: PVCs, snapshot objects and workload pods, made through the
Kubernetes API alone, and the node facts (lvs, blkid, df) read through the environment's NodeAccess."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes import client

from localcsi.core.tags import LvMetadata, decode_tags
from localcsi.testing.e2e_env import E2EEnvironment
from localcsi.testing.waiting import wait_for

LOCALCSI_IMAGE_LABEL = "app.kubernetes.io/name=localcsi-node"
DATA = "/data"
BLOCK_DEVICE = "/dev/xvda"
POD_TIMEOUT = 300
MIB = 1024 * 1024
SNAPSHOT_GROUP, SNAPSHOT_VERSION = "snapshot.storage.k8s.io", "v1"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@dataclass
class Kube:
    env: E2EEnvironment
    namespace: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.env.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.env.api)

    # -- objects -------------------------------------------------------------------------------
    def pvc(
        self,
        name: str,
        storage_class: str,
        size: str,
        block: bool = False,
        data_source: dict[str, str] | None = None,
    ) -> None:
        spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Block" if block else "Filesystem",
        }
        if data_source is not None:
            spec["dataSource"] = data_source
        body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}
        self.core.create_namespaced_persistent_volume_claim(self.namespace, body)

    def snapshot(self, name: str, pvc: str, snapshot_class: str = "localcsi-lvm") -> None:
        body = {
            "apiVersion": f"{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name},
            "spec": {"volumeSnapshotClassName": snapshot_class, "source": {"persistentVolumeClaimName": pvc}},
        }
        self.custom.create_namespaced_custom_object(
            SNAPSHOT_GROUP, SNAPSHOT_VERSION, self.namespace, "volumesnapshots", body
        )

    def wait_snapshot_ready(self, name: str) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            snap = self.custom.get_namespaced_custom_object(
                SNAPSHOT_GROUP, SNAPSHOT_VERSION, self.namespace, "volumesnapshots", name
            )
            return snap if (snap.get("status") or {}).get("readyToUse") else None

        return wait_for(f"VolumeSnapshot {name} readyToUse", ready, POD_TIMEOUT, 1.0, lambda: self.events(name))

    def pod(self, name: str, pvc: str, args: list[str], block: bool = False, restart: str = "Never") -> None:
        """A workload pod with `pvc` at DATA (or BLOCK_DEVICE)."""
        mount: dict[str, Any] = (
            {"volumeDevices": [{"name": "data", "devicePath": BLOCK_DEVICE}]}
            if block
            else {"volumeMounts": [{"name": "data", "mountPath": DATA}]}
        )
        volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}]
        self._create_pod(name, args, mount, volumes, restart)

    def pod_with_claims(self, name: str, pvcs: list[str], args: list[str]) -> None:
        """A workload pod with each claim mounted at DATA<index>."""
        mounts = [{"name": f"data{index}", "mountPath": f"{DATA}{index}"} for index in range(len(pvcs))]
        volumes = [{"name": f"data{i}", "persistentVolumeClaim": {"claimName": pvc}} for i, pvc in enumerate(pvcs)]
        self._create_pod(name, args, {"volumeMounts": mounts}, volumes, "Never")

    def _create_pod(
        self, name: str, args: list[str], mounts: dict[str, Any], volumes: list[dict[str, Any]], restart: str
    ) -> None:
        container = {
            "name": "workload",
            "image": self.workload_image(),
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-m", "localcsi.testing.workload", *args],
            **mounts,
        }
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": restart,
                "terminationGracePeriodSeconds": 5,
                "containers": [container],
                "volumes": volumes,
            },
        }
        self.core.create_namespaced_pod(self.namespace, body)

    def workload_image(self) -> str:
        """The localcsi image, as the release runs it: it has Python and this package."""
        pods = client.CoreV1Api(self.env.api).list_namespaced_pod(
            "localcsi-system", label_selector=LOCALCSI_IMAGE_LABEL
        )
        image: str = pods.items[0].spec.containers[0].image
        return image

    # -- waits ---------------------------------------------------------------------------------
    def wait_pod_phase(self, name: str, phases: tuple[str, ...]) -> client.V1Pod:
        def reached() -> client.V1Pod | None:
            try:
                pod = self.core.read_namespaced_pod(name, self.namespace)
            except client.exceptions.ApiException as error:
                if error.status == 404:  # a controller's pod (a StatefulSet's) not made yet: seen once
                    return None  # in a full local CI run, kube-controller-manager slower than the first poll
                raise
            if pod.status.phase == "Failed" and "Failed" not in phases:
                raise AssertionError(f"pod {name} failed: {self.termination_message(pod)}\n{self.events(name)}")
            return pod if pod.status.phase in phases else None

        return wait_for(f"pod {name} {'/'.join(phases)}", reached, POD_TIMEOUT, 1.0, lambda: self.events(name))

    def run_to_completion(self, name: str, pvc: str, args: list[str], block: bool = False) -> str:
        """Run a workload pod until it succeeds; returns its report and deletes the pod."""
        return self.run_side_by_side([(name, pvc, args, block)])[0]

    def run_side_by_side(self, runs: list[tuple[str, str, list[str], bool]]) -> list[str]:
        """Start a workload pod per (name, claim, args, block) all at once, as a StatefulSet's would start,
        and wait until each succeeds; returns their reports in order and deletes the pods."""
        for name, pvc, args, block in runs:
            self.pod(name, pvc, args, block=block)
        reports = []
        for name, *_ in runs:
            pod = self.wait_pod_phase(name, ("Succeeded",))
            self.delete_pod(name)
            reports.append(self.termination_message(pod))
        return reports

    @staticmethod
    def termination_message(pod: client.V1Pod) -> str:
        for status in pod.status.container_statuses or []:
            if status.state.terminated is not None:
                return str(status.state.terminated.message or "").strip()
        return ""

    def delete_pod(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        wait_for(f"pod {name} gone", lambda: not self._exists(self.core.read_namespaced_pod, name), POD_TIMEOUT, 1.0)

    def delete_pvc(self, name: str) -> str | None:
        """Delete a claim and wait until its PV is gone too; returns the PV's name."""
        return self.delete_pvcs([name])[0]

    def delete_pvcs(self, names: list[str]) -> list[str | None]:
        """Delete claims all at once and wait until they and their PVs are gone; returns the PVs' names."""
        read = self.core.read_namespaced_persistent_volume_claim
        pvs = [read(name, self.namespace).spec.volume_name for name in names]
        for name in names:
            self.core.delete_namespaced_persistent_volume_claim(name, self.namespace)
        for name, pv in zip(names, pvs, strict=True):
            self._wait_gone(f"PVC {name}", partial(self._exists, read, name))
            if pv:
                self._wait_gone(f"PV {pv}", partial(self._exists_cluster, self.core.read_persistent_volume, pv))
        return [str(pv) if pv else None for pv in pvs]

    @staticmethod
    def _wait_gone(what: str, exists: Callable[[], bool]) -> None:
        wait_for(f"{what} gone", lambda: not exists(), POD_TIMEOUT, 1.0)

    def wait_bound(self, pvc: str) -> None:
        def bound() -> bool:
            return bool(self.core.read_namespaced_persistent_volume_claim(pvc, self.namespace).status.phase == "Bound")

        wait_for(f"PVC {pvc} Bound", bound, POD_TIMEOUT, 1.0, lambda: self.events(pvc))

    def bound_pv(self, pvc: str) -> client.V1PersistentVolume:
        claim = self.core.read_namespaced_persistent_volume_claim(pvc, self.namespace)
        assert claim.status.phase == "Bound", f"PVC {pvc} is {claim.status.phase}"
        return self.core.read_persistent_volume(claim.spec.volume_name)

    def failed_scheduling(self, pod: str, words: str) -> str:
        """The first FailedScheduling event of `pod` whose message holds `words`, waited for."""

        def message() -> str | None:
            events = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={pod}")
            found = (e.message for e in events.items if e.reason == "FailedScheduling" and words in e.message)
            return next(found, None)

        what = f"FailedScheduling for {pod} saying {words!r}"
        waited: str = wait_for(what, message, 180, 2.0, lambda: self.events(pod))
        return waited

    def events(self, name: str) -> str:
        events = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}")
        return "\n".join(f"{e.reason}: {e.message}" for e in events.items)

    def _exists(self, read: Any, name: str) -> bool:
        try:
            read(name, self.namespace)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    @staticmethod
    def _exists_cluster(read: Any, name: str) -> bool:
        try:
            read(name)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


@contextmanager
def namespace(env: E2EEnvironment, prefix: str) -> Iterator[Kube]:
    """A namespace of its own for a test, deleted afterwards (with what is left in it)."""
    name = unique(prefix)
    core = client.CoreV1Api(env.api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(f"default ServiceAccount in {name}", lambda: _has_default_sa(core, name), 60, 0.5)
    try:
        yield Kube(env, name)
    finally:
        core.delete_namespace(name)


def _has_default_sa(core: client.CoreV1Api, namespace_name: str) -> bool:
    return any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(namespace_name).items)


# -- node facts ------------------------------------------------------------------------------------
def pv_node(pv: client.V1PersistentVolume) -> str:
    """The node a local PV lives on, from its node affinity (the driver's topology segment)."""
    node: str = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values[0]
    return node


def logical_volumes(env: E2EEnvironment, node: str) -> list[dict[str, str]]:
    argv = [
        "lvs",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "vg_name,lv_name,lv_size,lv_tags,lv_path",
    ]
    report = json.loads(env.node(node).run(argv).check().stdout)
    rows: list[dict[str, str]] = report["report"][0]["lv"]
    return rows


def volume_lv(env: E2EEnvironment, node: str, pv_name: str) -> tuple[dict[str, str], LvMetadata] | None:
    """The LV whose tags name the PV (the provisioner passes the PV's name as the CSI name), with the
    metadata its tags carry."""
    for row in logical_volumes(env, node):
        meta = decode_tags(row["lv_tags"].split(","), lv=row["lv_name"]) if row["lv_tags"] else None
        if meta is not None and meta.name == pv_name:
            return row, meta
    return None


def pod_volume_dir(pod_uid: str, plugin: str, volume: str) -> str:
    """Where the node's kubelet keeps a pod's volume: `plugin` is kubernetes.io~csi, kubernetes.io~empty-dir..."""
    return f"/var/lib/kubelet/pods/{pod_uid}/volumes/{plugin}/{volume}"


def mounted_size_bytes(env: E2EEnvironment, node: str, pod_uid: str, pv_name: str) -> int:
    """The size of the file system the kubelet mounted for a pod's volume, as df sees it in the pod."""
    path = f"{pod_volume_dir(pod_uid, 'kubernetes.io~csi', pv_name)}/mount"
    out = env.node(node).run(["df", "-B1", "--output=size", path]).check().stdout.split()
    return int(out[-1])
