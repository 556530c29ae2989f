#!/usr/bin/env python3
"""CreateVolume against bare lvcreate, in the same node VM run (root and qemu needed).

    python benchmarks/bench_create.py [--count 20] [--parallel 50]

Both sides are timed inside the guest, so the host-guest link is not measured. Reports the
ratio of the median single create and of the wall time of PARALLEL concurrent creates.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from localcsi.testing.guest_plugin import UNIX_ENDPOINT, GuestPlugin
from localcsi.testing.install import GUEST_SITE, install_project, site_disk
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=50)
    args = parser.parse_args()
    with NodeVM(VMConfig(disks_gib=[16], site_disk=site_disk())) as vm:
        install_project(vm)
        vm.check(["vgcreate", "-y", VG, vm.data_disks()[0]])
        plugin = GuestPlugin(vm, endpoint=UNIX_ENDPOINT).start()
        script = "/opt/localcsi/guest_create.py"
        vm.guest.put(script, (Path(__file__).parent / "guest_create.py").read_bytes())
        argv = ["python3", script, VG, UNIX_ENDPOINT.removeprefix("unix://"), str(args.count), str(args.parallel)]
        out = vm.check(argv, timeout=3600, env={"PYTHONPATH": GUEST_SITE}).stdout
        plugin.stop()
    result = json.loads(out)
    single = result["single_csi_median"] / result["single_bare_median"]
    parallel = result["parallel_csi_wall"] / result["parallel_bare_wall"]
    print(
        f"single create, median of {args.count}: lvcreate {result['single_bare_median']:.3f}s, "
        f"CreateVolume {result['single_csi_median']:.3f}s, ratio {single:.2f} (goal <= 1.15)"
    )
    print(
        f"{args.parallel} parallel creates, wall: lvcreate {result['parallel_bare_wall']:.2f}s, "
        f"CreateVolume {result['parallel_csi_wall']:.2f}s, ratio {parallel:.2f} (goal <= 1.2)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
