#!/usr/bin/env python3
"""Direct IO on a localcsi volume without limits against a bare LV of the same layout, in one node VM
run (root and qemu needed).

    python benchmarks/bench_io.py [--rounds 4] [--seconds 5]

Both are linear LVs in the same VG with ext4, measured by fio (the VM image's) in the same
kubelet-style pod cgroup with the same job: direct IO, libaio at queue depth 8, on a 64 MiB file;
random 4 KiB reads and writes (IOPS) and sequential 1 MiB reads and writes (bytes/s). The localcsi
volume is made by CreateVolume and mounted by NodePublishVolume, so its pod went through the IO-limit
path (with no limit to set). Rounds alternate bare, localcsi, bare, ... so that drift in the emulated
disk hits both. Reports the median of each and the ratio localcsi / bare (goal: at least 0.95).
"""

from __future__ import annotations

import argparse
import json
import statistics
import uuid
from typing import Any

from localcsi.csi import csi_pb2
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB
from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import install_project, site_disk
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-bench"
SIZE_MIB = 256
FILE_MIB = 64
IODEPTH = 8
# kind -> (fio rw, block size, what to report)
KINDS = {
    "randread-iops": ("randread", "4k", "iops"),
    "randwrite-iops": ("randwrite", "4k", "iops"),
    "seqread-1m": ("read", "1m", "bw_bytes"),
    "seqwrite-1m": ("write", "1m", "bw_bytes"),
}
# Join the cgroup in argv[1], then exec argv[2:] (no shell involved).
JOIN_AND_EXEC = (
    "import os, sys\n"
    "open(os.path.join(sys.argv[1], 'cgroup.procs'), 'w').write(str(os.getpid()))\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def fio_argv(kind: str, directory: str, seconds: float) -> list[str]:
    rw, block, _ = KINDS[kind]
    return [
        "fio", "--name=bench", f"--filename={directory}/bench", f"--size={FILE_MIB}m", "--direct=1",
        "--ioengine=libaio", f"--iodepth={IODEPTH}", f"--rw={rw}", f"--bs={block}", "--time_based",
        f"--runtime={seconds:g}", "--output-format=json",
    ]  # fmt: skip


def fio_result(kind: str, report: dict[str, Any]) -> float:
    """The IOPS or bytes per second of fio's JSON report for the job's direction."""
    rw, _, field = KINDS[kind]
    direction = "write" if "write" in rw else "read"
    return float(report["jobs"][0][direction][field])


def ratios(bare: dict[str, list[float]], csi: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per kind: the median of each side and their ratio."""
    table = {}
    for kind in KINDS:
        bare_median, csi_median = statistics.median(bare[kind]), statistics.median(csi[kind])
        table[kind] = {"bare": bare_median, "localcsi": csi_median, "ratio": csi_median / bare_median}
    return table


def _measure(vm: NodeVM, cgroup: str, mount: str, seconds: float) -> dict[str, float]:
    found = {}
    for kind in KINDS:
        argv = ["python3", "-c", JOIN_AND_EXEC, cgroup, *fio_argv(kind, mount, seconds)]
        found[kind] = fio_result(kind, json.loads(vm.check(argv, timeout=600).stdout))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with NodeVM(VMConfig(disks_gib=[4], port_forwards={PLUGIN_TCP_PORT: 0}, site_disk=site_disk())) as vm:
        install_project(vm)
        vm.check(["vgcreate", "-y", VG, vm.data_disks()[0]])
        vm.check(["lvcreate", "--yes", "--type", "linear", "-L", f"{SIZE_MIB}m", "-n", "bare", VG])
        vm.check(["mkfs.ext4", "-q", f"/dev/{VG}/bare"])
        vm.check(["mkdir", "-p", "/mnt/bare"])
        vm.check(["mount", f"/dev/{VG}/bare", "/mnt/bare"])
        uid = str(uuid.uuid4())
        cgroup = f"/sys/fs/cgroup/kubepods/burstable/pod{uid}"
        vm.check(["mkdir", "-p", cgroup])
        plugin = GuestPlugin(vm).start()
        volume = plugin.controller.CreateVolume(req.create_volume("bench", SIZE_MIB * MIB, {"vgName": VG})).volume
        target = f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/pv-bench/mount"
        publish = req.publish(volume.volume_id, target)
        publish.volume_context["csi.storage.k8s.io/pod.uid"] = uid
        plugin.node.NodePublishVolume(publish)
        bare: dict[str, list[float]] = {kind: [] for kind in KINDS}
        csi: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(args.rounds):
            for side, mount in ((bare, "/mnt/bare"), (csi, target)):
                for kind, value in _measure(vm, cgroup, mount, args.seconds).items():
                    side[kind].append(value)
        plugin.node.NodeUnpublishVolume(req.unpublish(volume.volume_id, target))
        plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
        plugin.stop()
    table = ratios(bare, csi)
    for kind, row in table.items():
        unit = "B/s" if KINDS[kind][2] == "bw_bytes" else "IOPS"
        print(f"{kind:15} bare {row['bare']:14.1f} {unit:4}  localcsi {row['localcsi']:14.1f}  "
              f"ratio {row['ratio']:.3f} (goal >= 0.95)")  # fmt: skip
    print(json.dumps({"rounds": args.rounds, "seconds": args.seconds, "results": table}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
