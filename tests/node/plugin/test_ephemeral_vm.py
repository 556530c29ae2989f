"""Inline ephemeral volumes on real lvm2 in the node VM, and the plugin killed at every step.

The kubelet is played by hand: a pod directory laid out as the kubelet lays it out, NodePublishVolume
with the ephemeral marker, NodeUnpublishVolume. Crashes are made without any hook in the plugin
(``localcsi.testing.crash_points``): the plugin is killed right before lvcreate, mkfs.ext4, mount,
umount or lvremove would run.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from localcsi.csi import csi_pb2
from localcsi.testing import crash_points
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import install_project, site_disk
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig
from localcsi.testing.waiting import wait_for

pytestmark = pytest.mark.node

VG = "localcsi-eph"
COLLECT_SECONDS = 1
CREATE_STEPS = ("lvcreate", "mkfs.ext4", "mount")
DELETE_STEPS = ("umount", "lvremove")


@dataclass(frozen=True)
class Pod:
    """A pod as the kubelet lays it out on the node, with one inline volume."""

    uid: str
    volume: str = "scratch"

    @property
    def dir(self) -> str:
        return f"/var/lib/kubelet/pods/{self.uid}"

    @property
    def target(self) -> str:
        return f"{self.dir}/volumes/kubernetes.io~csi/{self.volume}/mount"

    @property
    def volume_id(self) -> str:
        return "csi-" + hashlib.sha256(f"{self.uid}{self.volume}".encode()).hexdigest()

    def publish_request(self, size: str = "64Mi") -> csi_pb2.NodePublishVolumeRequest:
        request = req.publish(self.volume_id, self.target, req.mount_capability(""))
        request.volume_context.update({
            "csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.uid": self.uid,
            "csi.storage.k8s.io/pod.name": "p", "size": size, "vgName": VG,
        })  # fmt: skip
        return request


@pytest.fixture(scope="module")
def plugin(vm_phases: Phases) -> Iterator[GuestPlugin]:
    vm = NodeVM(VMConfig(disks_gib=[2], port_forwards={PLUGIN_TCP_PORT: 0}, site_disk=site_disk()), vm_phases)
    try:
        vm.start()
        install_project(vm)
        vm.check(["vgcreate", "-y", VG, vm.data_disks()[0]])
        env = crash_points.install(vm, (*CREATE_STEPS, *DELETE_STEPS))
        guest = GuestPlugin(vm, extra_args=("--ephemeral-collect-seconds", str(COLLECT_SECONDS)), env=env).start()
        yield guest
        guest.stop()
    finally:
        vm.stop()


def lvs(vm: NodeVM) -> list[str]:
    out = vm.check(["lvs", "--reportformat", "json", "-o", "lv_name", VG]).json()
    return [row["lv_name"] for row in out["report"][0]["lv"]]


def new_pod(vm: NodeVM) -> Pod:
    pod = Pod(str(uuid.uuid4()))
    vm.check(["mkdir", "-p", pod.dir])
    return pod


def is_mounted(vm: NodeVM, path: str) -> bool:
    return vm.run(["findmnt", "-n", path]).rc == 0


def wait_until_gone(vm: NodeVM, before: list[str], timeout: float = 30) -> None:
    wait_for(f"the LVs back to {before}", lambda: lvs(vm) == before, timeout, 0.5, lambda: f"LVs now: {lvs(vm)}")


def test_an_inline_volume_lives_exactly_as_long_as_its_pod_uses_it(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    before = lvs(vm)
    pod = new_pod(vm)
    plugin.node.NodePublishVolume(pod.publish_request())
    plugin.node.NodePublishVolume(pod.publish_request())  # the kubelet's retry changes nothing
    assert len(lvs(vm)) == len(before) + 1
    assert vm.check(["findmnt", "-n", "-o", "FSTYPE", pod.target]).stdout.strip() == "ext4"
    vm.check(["dd", "if=/dev/urandom", f"of={pod.target}/data", "bs=1M", "count=8", "status=none"])
    stats = plugin.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=pod.volume_id, volume_path=pod.target)
    )
    assert stats.usage[0].used >= 8 * MIB

    plugin.node.NodeUnpublishVolume(req.unpublish(pod.volume_id, pod.target))
    assert lvs(vm) == before and not is_mounted(vm, pod.target)
    plugin.node.NodeUnpublishVolume(req.unpublish(pod.volume_id, pod.target))  # repeated: harmless

    # The same extents, handed out again without lvm2's zeroing, read as zeroes: the wipe happened.
    vm.check(["lvcreate", "-y", "-Zn", "-Wn", "-L", "64m", "-n", "probe", VG])
    try:
        assert vm.run(["cmp", "-n", str(64 * MIB), f"/dev/{VG}/probe", "/dev/zero"], timeout=120).rc == 0
    finally:
        vm.check(["lvremove", "-y", f"{VG}/probe"])


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_a_kill_during_create_then_the_kubelets_retry_converge(plugin: GuestPlugin, step: str) -> None:
    vm = plugin.vm
    before = lvs(vm)
    pod = new_pod(vm)
    crash_points.crash_at(plugin, step, lambda: plugin.node.NodePublishVolume(pod.publish_request(), timeout=120))
    time.sleep(3 * COLLECT_SECONDS)  # the restarted plugin's collector ran: the pod is still here
    assert len(lvs(vm)) - len(before) == (0 if step == "lvcreate" else 1)

    plugin.node.NodePublishVolume(pod.publish_request())
    assert len(lvs(vm)) == len(before) + 1 and is_mounted(vm, pod.target)
    vm.check(["touch", f"{pod.target}/written"])
    plugin.node.NodeUnpublishVolume(req.unpublish(pod.volume_id, pod.target))
    assert lvs(vm) == before


@pytest.mark.parametrize("step", CREATE_STEPS[1:])
def test_a_volume_whose_pod_left_during_a_crash_is_collected_only_after_the_pod_dir_goes(
    plugin: GuestPlugin, step: str
) -> None:
    vm = plugin.vm
    before = lvs(vm)
    pod = new_pod(vm)
    crash_points.crash_at(plugin, step, lambda: plugin.node.NodePublishVolume(pod.publish_request(), timeout=120))
    time.sleep(3 * COLLECT_SECONDS)
    assert len(lvs(vm)) == len(before) + 1, "collected while its pod's directory was still there"

    vm.check(["rm", "-rf", pod.dir])  # the kubelet cleaned the pod up without an unpublish
    wait_until_gone(vm, before)


@pytest.mark.parametrize("step", DELETE_STEPS)
def test_a_kill_during_delete_then_the_kubelets_retry_converge(plugin: GuestPlugin, step: str) -> None:
    vm = plugin.vm
    before = lvs(vm)
    pod = new_pod(vm)
    plugin.node.NodePublishVolume(pod.publish_request())
    crash_points.crash_at(
        plugin, step, lambda: plugin.node.NodeUnpublishVolume(req.unpublish(pod.volume_id, pod.target))
    )
    assert len(lvs(vm)) == len(before) + 1

    plugin.node.NodeUnpublishVolume(req.unpublish(pod.volume_id, pod.target))
    assert lvs(vm) == before and not is_mounted(vm, pod.target)


def test_a_volume_still_mounted_is_not_collected_even_if_its_pod_dir_is_gone(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    before = lvs(vm)
    pod = new_pod(vm)
    plugin.node.NodePublishVolume(pod.publish_request())
    elsewhere = "/mnt/held"
    vm.check(["mkdir", "-p", elsewhere])
    lv = next(name for name in lvs(vm) if name not in before)
    vm.check(["umount", pod.target])  # the kubelet never unpublishes: the plugin is not told
    vm.check(["mount", f"/dev/{VG}/{lv}", elsewhere])  # someone else holds it open
    vm.check(["rm", "-rf", pod.dir])
    time.sleep(3 * COLLECT_SECONDS)
    assert lv in lvs(vm), "an open LV was collected"
    vm.check(["umount", elsewhere])
    wait_until_gone(vm, before)
