#!/usr/bin/env python3
"""The localcsi demo: what a user sees, on one machine, with nothing faked.

    bash hack/demo    on a fresh machine, as root: installs what it needs, then runs `tox -e demo`
    tox -e demo       this script, once hack/install-deps has run

Starts the e2e environment (localcsi.testing.e2e_vm): etcd, kube-apiserver, kube-controller-manager
and kube-scheduler on the host's loopback, the node VM as a real node (containerd + kubelet), and
localcsi installed with `helm install`. Then, through the Kubernetes API alone: a PVC and a pod that
writes to it, an online expansion under a running pod, a VolumeSnapshot, a PVC restored from it and a
pod that reads the same checksum back, and `localcsi status`. Each step prints a line as it starts and
as it ends; a table of the steps and their seconds closes the run. The environment is stopped at the
end, on failure and on Ctrl-C. docs/demo.md has what it shows and its times.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import traceback
from types import FrameType
from typing import Any

from demo_steps import Steps, summary_table
from kubernetes import client

from localcsi.testing.e2e_env import storage_ready, storage_report
from localcsi.testing.e2e_vm import VMEnvironment
from localcsi.testing.phases import Phases
from localcsi.testing.waiting import wait_for

NAMESPACE = "localcsi-demo"
STORAGE_CLASS = SNAPSHOT_CLASS = "localcsi-lvm"
SIZE, GROWN = "256Mi", "512Mi"
MIB = 1024 * 1024
GROWN_MIN_BYTES = 440 * MIB  # ext4 keeps a few percent of 512 MiB for its journal and metadata
WRITE_MIB = 8
PAYLOAD = "/data/payload"
TIMEOUT = 300
SNAPSHOT_API = ("snapshot.storage.k8s.io", "v1")
NODE_POD_LABEL = "app.kubernetes.io/name=localcsi-node"
STEPS = 9


def say(line: str) -> None:
    print(line, flush=True)  # tox reads a pipe: unflushed lines would arrive in bursts


class Demo:
    """The user's objects in one namespace, made and read through the Kubernetes API."""

    def __init__(self, env: VMEnvironment) -> None:
        self.env = env
        self.core = client.CoreV1Api(env.api)
        self.custom = client.CustomObjectsApi(env.api)
        self.image = ""

    def create_namespace(self) -> str:
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        accounts = self.core.list_namespaced_service_account
        wait_for("the default ServiceAccount", lambda: accounts(NAMESPACE).items, 60, 0.5)
        # The workload runs in the localcsi image: it has Python and this package.
        node_pods = self.core.list_namespaced_pod("localcsi-system", label_selector=NODE_POD_LABEL).items
        self.image = node_pods[0].spec.containers[0].image
        return f"workload image {self.image}"

    def claim(self, name: str, size: str, snapshot: str | None = None) -> None:
        spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "resources": {"requests": {"storage": size}},
        }
        if snapshot is not None:
            spec["dataSource"] = {"apiGroup": SNAPSHOT_API[0], "kind": "VolumeSnapshot", "name": snapshot}
        self.core.create_namespaced_persistent_volume_claim(NAMESPACE, {"metadata": {"name": name}, "spec": spec})

    def pod(self, name: str, claim: str, *args: str) -> None:
        container = {
            "name": "workload",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-m", "localcsi.testing.workload", *args],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }
        spec = {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        }
        self.core.create_namespaced_pod(NAMESPACE, {"metadata": {"name": name}, "spec": spec})

    def wait_pod(self, name: str, phase: str) -> Any:
        def reached() -> Any:
            pod = self.core.read_namespaced_pod(name, NAMESPACE)
            if pod.status.phase == "Failed":
                raise RuntimeError(f"pod {name} failed: {termination_message(pod)}\n{self.events(name)}")
            return pod if pod.status.phase == phase else None

        return wait_for(f"pod {name} {phase}", reached, TIMEOUT, 1.0, lambda: self.events(name))

    def run_pod(self, name: str, claim: str, *args: str) -> str:
        """Run a workload pod to completion and return what it reported; the pod is deleted."""
        self.pod(name, claim, *args)
        message = termination_message(self.wait_pod(name, "Succeeded"))
        self.delete_pod(name)
        return message

    def delete_pod(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        wait_for(f"pod {name} gone", lambda: self._gone(self.core.read_namespaced_pod, name), TIMEOUT, 1.0)

    def pv_name(self, claim: str) -> str:
        return str(self.core.read_namespaced_persistent_volume_claim(claim, NAMESPACE).spec.volume_name)

    def mounted_bytes(self, pod: Any, claim: str) -> int:
        """The size of the file system the kubelet mounted for the pod's volume, as df sees it on the node."""
        path = f"/var/lib/kubelet/pods/{pod.metadata.uid}/volumes/kubernetes.io~csi/{self.pv_name(claim)}/mount"
        result = self.env.node(pod.spec.node_name).run(["df", "-B1", "--output=size", path]).check()
        return int(result.stdout.split()[-1])

    def snapshot(self, name: str, claim: str) -> str:
        body = {
            "apiVersion": "/".join(SNAPSHOT_API),
            "kind": "VolumeSnapshot",
            "metadata": {"name": name},
            "spec": {"volumeSnapshotClassName": SNAPSHOT_CLASS, "source": {"persistentVolumeClaimName": claim}},
        }
        self.custom.create_namespaced_custom_object(*SNAPSHOT_API, NAMESPACE, "volumesnapshots", body)

        def ready() -> dict[str, Any] | None:
            snap = self.custom.get_namespaced_custom_object(*SNAPSHOT_API, NAMESPACE, "volumesnapshots", name)
            status: dict[str, Any] = snap.get("status") or {}
            return status if status.get("readyToUse") else None

        status = wait_for(f"VolumeSnapshot {name} readyToUse", ready, TIMEOUT, 1.0, lambda: self.events(name))
        return f"readyToUse, restoreSize {status.get('restoreSize')}"

    def events(self, name: str) -> str:
        events = self.core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
        return "\n".join(f"{event.reason}: {event.message}" for event in events)

    @staticmethod
    def _gone(read: Any, name: str) -> bool:
        try:
            read(name, NAMESPACE)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return True
            raise
        return False


def termination_message(pod: Any) -> str:
    for status in pod.status.container_statuses or []:
        if status.state.terminated is not None:
            return str(status.state.terminated.message or "").strip()
    return ""


def expand_under_a_running_pod(demo: Demo, claim: str) -> str:
    demo.pod("holder", claim, "hold")
    pod = demo.wait_pod("holder", "Running")
    before = demo.mounted_bytes(pod, claim)
    patch = {"spec": {"resources": {"requests": {"storage": GROWN}}}}
    demo.core.patch_namespaced_persistent_volume_claim(claim, NAMESPACE, patch)

    def grown() -> int | None:
        size = demo.mounted_bytes(pod, claim)
        return size if size >= GROWN_MIN_BYTES else None

    after = wait_for(f"the file system of {claim} to grow", grown, TIMEOUT, 2.0, lambda: demo.events(claim))

    def capacity() -> bool:
        status = demo.core.read_namespaced_persistent_volume_claim(claim, NAMESPACE).status
        return bool((status.capacity or {}).get("storage") == GROWN)

    wait_for(f"PVC {claim} capacity {GROWN}", capacity, 120, 1.0)
    if demo.core.read_namespaced_pod("holder", NAMESPACE).status.phase != "Running":
        raise RuntimeError("the pod holding the volume stopped during the expansion")
    demo.delete_pod("holder")
    return f"file system {before // MIB} MiB -> {after // MIB} MiB while pod holder ran; PVC capacity {GROWN}"


def localcsi_status(env: VMEnvironment) -> str:
    argv = [sys.executable, "-m", "localcsi", "status", "--kubeconfig", str(env.cluster.kubeconfig())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        say(f"    {line}")
    if result.returncode != 0:
        raise RuntimeError(f"localcsi status exited {result.returncode}")
    return f"{len(result.stdout.splitlines()) - 1} VG row(s)"


def lifecycle(steps: Steps, env: VMEnvironment) -> None:
    with steps.step("wait for the node's storage capacity (CSIStorageCapacity)"):
        ready = lambda: storage_ready(env, STORAGE_CLASS)  # noqa: E731
        wait_for("a non-zero CSIStorageCapacity on the node", ready, TIMEOUT, 2.0, lambda: storage_report(env))
    demo = Demo(env)
    with steps.step(f"namespace {NAMESPACE}") as step:
        step.detail = demo.create_namespace()
    with steps.step(f"PVC data ({STORAGE_CLASS}, {SIZE}) and a pod that writes {WRITE_MIB} MiB") as step:
        demo.claim("data", SIZE)
        written = demo.run_pod("writer", "data", "write", PAYLOAD, str(WRITE_MIB))
        step.detail = f"bound to {demo.pv_name('data')}, sha256 {written[:16]}..."
    # lvm2 refuses to grow a thick volume in use that has copy-on-write snapshots (docs/controller.md):
    # the volume grows first, and is snapshotted at its new size.
    with steps.step(f"expand PVC data to {GROWN} under a running pod") as step:
        step.detail = expand_under_a_running_pod(demo, "data")
    with steps.step(f"VolumeSnapshot data-snapshot (class {SNAPSHOT_CLASS})") as step:
        step.detail = demo.snapshot("data-snapshot", "data")
    with steps.step("PVC restored from the snapshot and a pod that reads it") as step:
        demo.claim("restored", GROWN, snapshot="data-snapshot")
        read = demo.run_pod("reader", "restored", "checksum", PAYLOAD, str(WRITE_MIB))
        if read != written:
            raise RuntimeError(f"the restored volume holds other data: sha256 {read} where {written} was written")
        step.detail = f"sha256 {read[:16]}... equals what the writer wrote"
    with steps.step("localcsi status") as step:
        step.detail = localcsi_status(env)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop the demo once. Later signals (tox forwards a SIGINT of its own) are
    ignored, so that they cannot cut the teardown short and leave the VM and the control plane running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    steps = Steps(STEPS, write=say)
    phases = Phases(write=say, prefix="[demo]       ")
    env = VMEnvironment(phases)
    started = False
    code = 0
    try:
        with steps.step("boot the node, helm install localcsi") as step:
            env.start()  # stops what it started when it fails
            started = True
            step.parts = list(phases.timings.items())
            step.detail = f"node {env.node_names[0]} Ready, localcsi pods Ready"
        lifecycle(steps, env)
    except KeyboardInterrupt:
        say("[demo] interrupted")
        code = 130
    except Exception:
        traceback.print_exc()
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            with steps.step("stop the environment"):
                if started:
                    env.stop()
                shutil.rmtree(env.workdir, ignore_errors=True)
        except Exception:
            traceback.print_exc()
            code = code or 1
    say("")
    say(summary_table(steps.steps))
    say(f"[demo] {'passed' if code == 0 else 'interrupted' if code == 130 else 'FAILED'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
