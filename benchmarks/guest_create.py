"""Runs inside the node VM: times bare lvcreate against CSI CreateVolume, both measured in the guest.

    python3 guest_create.py VG SOCKET COUNT PARALLEL
Prints one JSON object with the timings in seconds.
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

from localcsi.csi import services
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import MIB

SIZE = 8 * MIB


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def lvcreate(vg: str, name: str) -> None:
    argv = ["lvcreate", "-y", "-Wy", "-Zy", "-n", name, "-L", f"{SIZE}b", vg]
    subprocess.run(argv, check=True, capture_output=True)


def main() -> None:
    vg, socket, count, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    controller = services.controller_stub(grpc.insecure_channel(f"unix:{socket}"))

    def create(name: str) -> None:
        controller.CreateVolume(req.create_volume(name, SIZE, {"vgName": vg}), timeout=600)

    # Interleaved, so drift in the emulated machine's speed hits both sides alike.
    bare, csi = [], []
    for index in range(count):
        bare.append(timed(functools.partial(lvcreate, vg, f"bare-{index}")))
        csi.append(timed(functools.partial(create, f"bench-{index}")))

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        bare_parallel = timed(lambda: list(pool.map(lambda i: lvcreate(vg, f"pbare-{i}"), range(parallel))))
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        csi_parallel = timed(lambda: list(pool.map(lambda i: create(f"pbench-{i}"), range(parallel))))

    print(
        json.dumps(
            {
                "single_bare_median": statistics.median(bare),
                "single_csi_median": statistics.median(csi),
                "parallel_bare_wall": bare_parallel,
                "parallel_csi_wall": csi_parallel,
                "count": count,
                "parallel": parallel,
            }
        )
    )


if __name__ == "__main__":
    main()
