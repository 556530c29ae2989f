"""What a node lives through: a rolling restart of localcsi's DaemonSet under a pod that uses a volume,
and a reboot with pods holding three volumes and a fourth with an IO limit. Data stays, nothing is
reformatted, and the limit is in force on the running pod again after the reboot.

The reboot is into cgroup v1 (the node runs v2 until then): the limit must come back in the other
hierarchy, and the IO limit test's v1 case, which runs right after it, needs no reboot of its own.
Both are marked `last`, so every other e2e test runs on v2 before."""

from __future__ import annotations

import datetime

import pytest
from e2e_kube import BLOCK_DEVICE, DATA, Kube, namespace, pv_node, unique, volume_lv
from kubernetes import client

from localcsi.testing.e2e_env import NAMESPACE, POOL_VG, E2EEnvironment, cgroup_version
from localcsi.testing.waiting import wait_for

DAEMONSET = "localcsi-node"
WRITE_MIB = 8
VOLUMES = [("localcsi-lvm", False), ("localcsi-lvm-xfs", False), ("localcsi-lvm", True)]
WRITE_BPS = 3 * 1024 * 1024


def _target(block: bool) -> str:
    return BLOCK_DEVICE if block else f"{DATA}/payload"


def _fs_uuid(env: E2EEnvironment, kube: Kube, claim: str) -> str:
    pv = kube.bound_pv(claim)
    found = volume_lv(env, pv_node(pv), pv.metadata.name)
    assert found is not None
    result = env.node(pv_node(pv)).run(["blkid", "-o", "value", "-s", "UUID", found[0]["lv_path"]])
    return result.stdout.strip()


def _written_claims(kube: Kube) -> dict[str, tuple[bool, str]]:
    """A claim of each kind in VOLUMES, each written by its own pod, side by side; each claim's checksum."""
    claims = {unique("data"): (storage_class, block) for storage_class, block in VOLUMES}
    for claim, (storage_class, block) in claims.items():
        kube.pvc(claim, storage_class, "200Mi", block=block)
    runs = [
        (unique("writer"), claim, ["write", _target(block), str(WRITE_MIB)], block)
        for claim, (_, block) in claims.items()
    ]
    written = kube.run_side_by_side(runs)
    return {claim: (block, digest) for (claim, (_, block)), digest in zip(claims.items(), written, strict=True)}


def _assert_data(kube: Kube, claims: dict[str, tuple[bool, str]]) -> None:
    runs = [
        (unique("reader"), claim, ["checksum", _target(block), str(WRITE_MIB)], block)
        for claim, (block, _) in claims.items()
    ]
    for (claim, (_, written)), read in zip(claims.items(), kube.run_side_by_side(runs), strict=True):
        assert read == written, f"{claim}: data changed"


def test_rolling_restart_of_the_node_daemonset_keeps_mounts_and_data(e2e_env: E2EEnvironment) -> None:
    apps = client.AppsV1Api(e2e_env.api)
    with namespace(e2e_env, "roll") as kube:
        claims = _written_claims(kube)
        holder = unique("holder")
        first = next(iter(claims))
        kube.pod(holder, first, ["hold"], restart="Always")
        kube.wait_pod_phase(holder, ("Running",))
        before = apps.read_namespaced_daemon_set(DAEMONSET, NAMESPACE)
        stamp = datetime.datetime.now(datetime.UTC).isoformat()
        patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
        apps.patch_namespaced_daemon_set(DAEMONSET, NAMESPACE, patch)

        def rolled() -> bool:
            ds = apps.read_namespaced_daemon_set(DAEMONSET, NAMESPACE)
            status = ds.status
            return bool(
                ds.metadata.generation > before.metadata.generation
                and status.observed_generation >= ds.metadata.generation
                and status.updated_number_scheduled == status.desired_number_scheduled
                and status.number_ready == status.desired_number_scheduled
            )

        wait_for("the node DaemonSet rolled and Ready", rolled, 300, 2.0)
        pod = kube.core.read_namespaced_pod(holder, kube.namespace)
        assert pod.status.phase == "Running"
        assert pod.status.container_statuses[0].restart_count == 0
        _assert_data(kube, claims)
        kube.delete_pod(holder)
        kube.delete_pvcs(list(claims))


def _limited_class(env: E2EEnvironment) -> str:
    name = unique("io-boot")
    client.StorageV1Api(env.api).create_storage_class({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
        "provisioner": "localcsi.io", "volumeBindingMode": "WaitForFirstConsumer",
        "parameters": {"vgName": POOL_VG, "writeBps": str(WRITE_BPS)},
    })  # fmt: skip
    return name


def _write_bps_in_force(env: E2EEnvironment, kube: Kube, pod_name: str, claim: str) -> int | None:
    """The write limit the node's cgroup holds for the claim's device in the pod's own cgroup, or None."""
    pod = kube.core.read_namespaced_pod(pod_name, kube.namespace)
    pv = kube.bound_pv(claim)
    node = env.node(pv_node(pv))
    found = volume_lv(env, pv_node(pv), pv.metadata.name)
    assert found is not None
    device = node.run(["lsblk", "-dno", "MAJ:MIN", found[0]["lv_path"]]).check().stdout.strip()
    v2 = cgroup_version(env, pv_node(pv)) == "v2"
    name = "io.max" if v2 else "blkio.throttle.write_bps_device"
    uid = pod.metadata.uid
    # cgroupfs names the pod's cgroup pod<uid>, systemd kubepods-<qos>-pod<uid with _>.slice
    paths = ["(", "-path", f"*pod{uid}/{name}", "-o", "-path", f"*pod{uid.replace('-', '_')}.slice/{name}", ")"]
    found_files = node.run(["find", "/sys/fs/cgroup", "-name", name, *paths]).check().stdout.split()
    assert len(found_files) == 1, f"the pod's own {name}: {found_files}"
    for line in node.run(["cat", found_files[0]]).check().stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == device:
            if not v2:
                return int(fields[1])
            limits = dict(field.split("=", 1) for field in fields[1:])
            return None if limits.get("wbps", "max") == "max" else int(limits["wbps"])
    return None


@pytest.mark.last
def test_node_reboot_into_cgroup_v1_brings_back_pods_with_their_data_and_limit(e2e_env: E2EEnvironment) -> None:
    if not e2e_env.can_reboot:
        pytest.skip("this environment's nodes cannot be rebooted (kind nodes are containers); the node VM proves it")
    limited_class = _limited_class(e2e_env)
    try:
        _reboot_with_held_volumes(e2e_env, limited_class)
    finally:
        client.StorageV1Api(e2e_env.api).delete_storage_class(limited_class)


def _reboot_with_held_volumes(e2e_env: E2EEnvironment, limited_class: str) -> None:
    with namespace(e2e_env, "boot") as kube:
        claims = _written_claims(kube)
        uuids = {claim: _fs_uuid(e2e_env, kube, claim) for claim, (block, _) in claims.items() if not block}
        holders = {}
        for claim, (block, _) in claims.items():
            holders[claim] = unique("holder")
            kube.pod(holders[claim], claim, ["hold"], block=block, restart="Always")
        limited_claim, limited_holder = unique("limited"), unique("holder")
        kube.pvc(limited_claim, limited_class, "64Mi")
        kube.pod(limited_holder, limited_claim, ["hold"], restart="Always")
        for holder in [*holders.values(), limited_holder]:
            kube.wait_pod_phase(holder, ("Running",))
        node = kube.core.read_namespaced_pod(next(iter(holders.values())), kube.namespace).spec.node_name
        assert _write_bps_in_force(e2e_env, kube, limited_holder, limited_claim) == WRITE_BPS

        e2e_env.reboot(node, "v1")
        assert cgroup_version(e2e_env, node) == "v1"

        def all_back() -> bool:
            for holder in holders.values():
                pod = kube.core.read_namespaced_pod(holder, kube.namespace)
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
                if not ready or not pod.status.container_statuses[0].restart_count:
                    return False
            return True

        wait_for("every holder pod running again after the reboot", all_back, 600, 3.0, lambda: kube.events(""))
        kube.wait_pod_phase(limited_holder, ("Running",))
        wait_for(
            "the IO limit in force on the limited pod again after the reboot",
            lambda: _write_bps_in_force(e2e_env, kube, limited_holder, limited_claim) == WRITE_BPS,
            120,
            3.0,
        )
        for holder in [*holders.values(), limited_holder]:
            kube.delete_pod(holder)
        _assert_data(kube, claims)
        assert {claim: _fs_uuid(e2e_env, kube, claim) for claim in uuids} == uuids, "a file system was remade"
        kube.delete_pvcs([*claims, limited_claim])
