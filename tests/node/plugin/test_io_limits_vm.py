"""Per-volume IO limits on real cgroups in the node VM, booted once with cgroup v2 and once with v1.

A pod cgroup is made where the kubelet (cgroupfs driver, Burstable) would make it; dd runs inside it
with direct IO, so the kernel's throttle is what is measured, not the page cache.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from localcsi.csi import csi_pb2
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.fixtures import THICK_VG
from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import install_project, site_disk
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

pytestmark = pytest.mark.node

RESYNC_SECONDS = 1
TOLERANCE = 0.10
# Join the cgroup given as argv[1], run argv[2:], print the seconds it took (no shell involved).
JOIN_AND_TIME = (
    "import os, subprocess, sys, time\n"
    "open(os.path.join(sys.argv[1], 'cgroup.procs'), 'w').write(str(os.getpid()))\n"
    "start = time.monotonic()\n"
    "subprocess.run(sys.argv[2:], check=True, stderr=subprocess.DEVNULL)\n"
    "print(time.monotonic() - start)\n"
)


class PodCgroup:
    """A Burstable pod's cgroup as the kubelet's cgroupfs driver lays it out, and a container inside."""

    def __init__(self, vm: NodeVM, version: str) -> None:
        self.vm = vm
        self.version = version
        self.uid = str(uuid.uuid4())
        base = "/sys/fs/cgroup" if version == "v2" else "/sys/fs/cgroup/blkio"
        self.path = f"{base}/kubepods/burstable/pod{self.uid}"
        # v1 throttling is flat: the container's own cgroup must carry the limit. Under v2 a process
        # sits in the pod's cgroup itself (a cgroup with controllers delegated below may hold none).
        self.container = f"{self.path}/ctr" if version == "v1" else self.path
        vm.check(["mkdir", "-p", self.container])

    def target(self, pv: str) -> str:
        return f"/var/lib/kubelet/pods/{self.uid}/volumes/kubernetes.io~csi/{pv}/mount"

    def block_target(self, pv: str) -> str:
        return f"/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/{pv}/{self.uid}"

    def rate(self, argv: list[str], amount: int) -> float:
        seconds = float(self.vm.check(["python3", "-c", JOIN_AND_TIME, self.container, *argv]).stdout)
        return amount / seconds

    def limits(self, device: str) -> dict[str, str]:
        """The limits the kernel holds for ``device`` (MAJ:MIN) in the container's cgroup."""
        if self.version == "v2":
            for line in self.vm.check(["cat", f"{self.path}/io.max"]).stdout.splitlines():
                if line.startswith(device + " "):
                    return dict(part.split("=") for part in line.split()[1:])
            return {}
        found = {}
        for key, name in (("rbps", "read_bps"), ("wbps", "write_bps"), ("riops", "read_iops"), ("wiops", "write_iops")):
            text = self.vm.check(["cat", f"{self.container}/blkio.throttle.{name}_device"]).stdout
            for line in text.splitlines():
                if line.startswith(device + " "):
                    found[key] = line.split()[1]
        return found


@pytest.fixture(scope="module", params=["v2", "v1"])
def plugin(request: pytest.FixtureRequest, vm_phases: Phases) -> Iterator[GuestPlugin]:
    config = VMConfig(
        disks_gib=[3], port_forwards={PLUGIN_TCP_PORT: 0}, cgroup_version=request.param, site_disk=site_disk()
    )
    vm = NodeVM(config, vm_phases)
    try:
        vm.start()
        mounted = vm.check(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"]).stdout.strip()
        assert mounted == ("cgroup2fs" if request.param == "v2" else "tmpfs"), f"booted with {mounted}"
        install_project(vm)
        vm.check(["vgcreate", "-y", THICK_VG, vm.data_disks()[0]])
        guest = GuestPlugin(vm, extra_args=("--io-limits-resync-seconds", str(RESYNC_SECONDS))).start()
        yield guest
        guest.stop()
    finally:
        vm.stop()


def version(plugin: GuestPlugin) -> str:
    return plugin.vm.config.cgroup_version


def device_of(plugin: GuestPlugin, volume_id: str) -> str:
    vg, lv = volume_id.split("/")[1:]
    out = plugin.vm.check(["lvs", "--noheadings", "-o", "lv_kernel_major,lv_kernel_minor", f"{vg}/{lv}"]).stdout
    major, minor = out.split()
    return f"{major}:{minor}"


def within(measured: float, limit: int) -> bool:
    return abs(measured - limit) <= TOLERANCE * limit


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10 * RESYNC_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:g}s")
        time.sleep(0.3)


def test_limits_are_enforced_changed_and_lifted(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    pod = PodCgroup(vm, version(plugin))
    params = {"vgName": THICK_VG, "writeBps": "1Mi", "readIops": "50"}
    volume = plugin.controller.CreateVolume(req.create_volume(f"limited-{version(plugin)}", 256 * MIB, params)).volume
    target = pod.target("pv-limited")
    context = {"csi.storage.k8s.io/pod.uid": pod.uid}
    publish = req.publish(volume.volume_id, target)
    publish.volume_context.update(context)
    plugin.node.NodePublishVolume(publish)
    device = device_of(plugin, volume.volume_id)
    assert "IO limits" in plugin.logs(20000), plugin.logs(20000)
    assert pod.limits(device) == (
        {"rbps": "max", "wbps": str(MIB), "riops": "50", "wiops": "max"}
        if pod.version == "v2"
        else {"wbps": str(MIB), "riops": "50"}
    )

    write = ["dd", "if=/dev/zero", f"of={target}/data", "bs=64k", "count=64", "oflag=direct"]
    write_rate = pod.rate(write, 4 * MIB)
    assert within(write_rate, MIB), f"write {write_rate / MIB:.2f} MiB/s at a 1 MiB/s limit"
    read = ["dd", f"if={target}/data", "of=/dev/null", "bs=4k", "count=200", "iflag=direct"]
    read_iops = pod.rate(read, 200)
    assert within(read_iops, 50), f"read {read_iops:.1f} IOPS at a 50 IOPS limit"

    modify = csi_pb2.ControllerModifyVolumeRequest(volume_id=volume.volume_id, mutable_parameters={"writeBps": "2Mi"})
    plugin.controller.ControllerModifyVolume(modify)
    wait_for(lambda: pod.limits(device).get("wbps") == str(2 * MIB), "the modified write limit in the pod")
    faster = pod.rate(["dd", "if=/dev/zero", f"of={target}/data", "bs=64k", "count=128", "oflag=direct"], 8 * MIB)
    assert within(faster, 2 * MIB), f"write {faster / MIB:.2f} MiB/s at a 2 MiB/s limit"

    lift = csi_pb2.ControllerModifyVolumeRequest(volume_id=volume.volume_id, mutable_parameters={"writeBps": "0"})
    plugin.controller.ControllerModifyVolume(lift)
    wait_for(lambda: pod.limits(device).get("wbps") in (None, "max"), "the lifted write limit")
    free = pod.rate(["dd", "if=/dev/zero", f"of={target}/data", "bs=64k", "count=128", "oflag=direct"], 8 * MIB)
    assert free >= 3 * 2 * MIB, f"unlimited write {free / MIB:.2f} MiB/s is not 3x the 2 MiB/s limit"

    plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    assert pod.limits(device) in ({}, {"rbps": "max", "wbps": "max", "riops": "max", "wiops": "max"})
    plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


def test_a_block_volume_and_a_container_started_later_get_the_limit(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    pod = PodCgroup(vm, version(plugin))
    params = {"vgName": THICK_VG, "bps": "512Ki"}
    volume = plugin.controller.CreateVolume(
        req.create_volume(f"block-{version(plugin)}", 64 * MIB, params, capability=req.block_capability())
    ).volume
    target = pod.block_target("pv-block")
    plugin.node.NodePublishVolume(req.publish(volume.volume_id, target, capability=req.block_capability()))
    device = device_of(plugin, volume.volume_id)
    assert pod.limits(device).get("rbps") == str(512 * 1024), "the pod UID read from a block target path"
    late = f"{pod.path}/late-container"
    vm.check(["mkdir", "-p", late])
    if pod.version == "v1":  # flat v1 throttling: the resync gives the new container its own limit
        wait_for(lambda: str(512 * 1024) in vm.check(["cat", f"{late}/blkio.throttle.read_bps_device"]).stdout,
                 "the limit in a container cgroup made after the publish")  # fmt: skip
    rate = pod.rate(["dd", f"if={target}", "of=/dev/null", "bs=64k", "count=32", "iflag=direct"], 2 * MIB)
    assert within(rate, 512 * 1024), f"block read {rate / 1024:.0f} KiB/s at a 512 KiB/s limit"
    plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


def test_a_pod_without_a_cgroup_still_gets_its_volume_and_a_reason(plugin: GuestPlugin) -> None:
    vm = plugin.vm
    volume = plugin.controller.CreateVolume(
        req.create_volume(f"orphan-{version(plugin)}", 64 * MIB, {"vgName": THICK_VG, "iops": "10"})
    ).volume
    missing = str(uuid.uuid4())
    target = f"/var/lib/kubelet/pods/{missing}/volumes/kubernetes.io~csi/pv-orphan/mount"
    plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    assert vm.run(["findmnt", target]).rc == 0, "the volume must be mounted even when its limit cannot be set"
    assert re.search(rf"not in force for pod {missing}: no cgroup", plugin.logs(20000))
    plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


def test_limits_outlive_a_plugin_restart_and_the_new_plugin_finds_the_pod(plugin: GuestPlugin) -> None:
    """Limits live in the kernel, not in the plugin: a kill -9 leaves them, and the restarted plugin
    finds the published volume by itself (findmnt and lvs), so a later modify still reaches the pod."""
    pod = PodCgroup(plugin.vm, version(plugin))
    params = {"vgName": THICK_VG, "writeBps": "1Mi"}
    volume = plugin.controller.CreateVolume(req.create_volume(f"restart-{version(plugin)}", 64 * MIB, params)).volume
    target = pod.target("pv-restart")
    plugin.node.NodePublishVolume(req.publish(volume.volume_id, target))
    device = device_of(plugin, volume.volume_id)
    assert pod.limits(device).get("wbps") == str(MIB)
    plugin.kill(signal.SIGKILL)
    assert pod.limits(device).get("wbps") == str(MIB), "a dead plugin must not take the limit with it"
    plugin.start()
    modify = csi_pb2.ControllerModifyVolumeRequest(volume_id=volume.volume_id, mutable_parameters={"writeBps": "3Mi"})
    plugin.controller.ControllerModifyVolume(modify)
    wait_for(lambda: pod.limits(device).get("wbps") == str(3 * MIB), "the restarted plugin's resync in the pod")
    plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
    plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
