#!/usr/bin/env python3
"""Scheduling throughput of the real kube-scheduler (issue 17's acceptance), in one run on one real
apiserver (etcd and kube-apiserver on loopback, nodes without kubelets):

    python benchmarks/bench_scheduler.py [--nodes 100] [--pods 1000] [--mixed-pods 1000] [--rounds 3]
                                         [--only mixed localcsi capacity] [--python-noop] [--against SRC]
                                         [--python PATH]

Three comparisons, each a side over its reference, taken round by round (rounds alternate the sides):

- mixed: 90 % pods without volumes and 10 % with one localcsi PVC. The extender runs as shipped,
  `managedResources: [localcsi.io/capacity]` with the localcsi pods carrying the webhook's mark, against
  the same pods and kube-scheduler with no extender. Goal >= 0.95.
- localcsi: pods that all have one localcsi PVC (marked): localcsi's extender against a Go extender that
  does nothing (benchmarks/noop_extender/main.go: the two HTTP calls per pod any extender costs).
  Goal >= 0.9.
- capacity: the same pods unmarked, no extender: CSIStorageCapacity-only mode (CSIDriver
  `storageCapacity: true`, one CSIStorageCapacity per node) against no capacity tracking.

Each round of a side creates its pods first and then starts a kube-scheduler to work through the
backlog; the rate is counted from the first decision to the last (benchmarks/bench_scheduler_workload.py),
so neither the Python client that creates the pods nor the scheduler's start-up is measured.
``--python-noop`` adds localcsi's HTTP server in front of an extender that does nothing
(benchmarks/noop_extender.py) to the localcsi pods' sides; ``--against SRC`` adds localcsi's extender
run from another checkout (``git worktree add /tmp/old HEAD~1``, then ``--against /tmp/old/src``), so that
two versions are compared round by round in one run. localcsi's extender and the Python no-op run on
``--python`` with this environment's packages: by default /usr/bin/python3, the interpreter the localcsi
image runs, where it exists. Each round also prints how many of the machine's
cores were busy between its first decision and its last, and the CPU per pod of the machine and of each
process (benchmarks/bench_scheduler_cpu.py). Run it through /tmp/vmslot on a shared
machine; a run of the defaults takes about seven minutes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_scheduler_cpu import (
    CONTROL_PLANE,
    CORES,
    TICKS_PER_SECOND,
    CpuSampler,
    busy_cores,
    cpu_per_pod,
    pids_by_command,
    process_ticks,
)
from bench_scheduler_stats import Comparison, describe, round_ratios, side_order  # benchmarks/, this directory
from bench_scheduler_workload import Decisions, Workload
from kubernetes import client

from localcsi import DRIVER_NAME, TOPOLOGY_KEY
from localcsi.testing import scheduler as scheduler_module
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.extender import ExtenderProcess, python_env
from localcsi.testing.scheduler import KubeScheduler
from localcsi.testing.storage_nodes import GIB, add_storage_node
from localcsi.testing.vm import free_port
from localcsi.testing.waiting import wait_for

HERE = Path(__file__).resolve().parent
STORAGE_CLASS = "localcsi-bench"
CAPACITY_NAMESPACE = "bench-capacity"
NODE_GIB = 100_000
# kube-scheduler's client is rate-limited (the test harness sets 200 requests/s, burst 400; the default is
# 50/100). Every decision is one write (a PVC's selected-node, a pod's binding), so past the burst every
# side would run at the limit and the ratios would read close to 1 whatever the extender costs.
UNTHROTTLED = {"qps": 10_000, "burst": 20_000}
# The localcsi image runs Debian's python3 (images/localcsi/Containerfile), built with PGO and LTO and
# linked statically; a pyenv interpreter is usually built with neither. The extender spent 8 % more CPU
# per pod on pyenv's here (docs/extender.md, session 24): the benchmark measures what ships.
SHIPPED_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Side:
    mixed: bool
    marked: bool
    extender: str | None = None  # "localcsi", "against" (--against's tree), "go-noop", "python-noop"
    capacity_tracking: bool = False


SIDES = {
    "mixed-baseline": Side(mixed=True, marked=False),
    "mixed-extender": Side(mixed=True, marked=True, extender="localcsi"),
    "localcsi-extender": Side(mixed=False, marked=True, extender="localcsi"),
    "localcsi-go-noop": Side(mixed=False, marked=True, extender="go-noop"),
    "localcsi-python-noop": Side(mixed=False, marked=True, extender="python-noop"),
    "localcsi-against": Side(mixed=False, marked=True, extender="against"),
    "localcsi-baseline": Side(mixed=False, marked=False),
    "localcsi-capacity": Side(mixed=False, marked=False, capacity_tracking=True),
}
COMPARISONS = {
    "mixed": [Comparison("mixed 90/10, extender / no extender", "mixed-extender", "mixed-baseline", 0.95)],
    "localcsi": [
        Comparison("all localcsi, extender / Go no-op extender", "localcsi-extender", "localcsi-go-noop", 0.9),
        Comparison("all localcsi, extender / no extender", "localcsi-extender", "localcsi-baseline"),
        Comparison("all localcsi, Go no-op extender / no extender", "localcsi-go-noop", "localcsi-baseline"),
    ],
    "capacity": [
        Comparison("all localcsi, CSIStorageCapacity / no tracking", "localcsi-capacity", "localcsi-baseline")
    ],
}
PYTHON_NOOP = Comparison("all localcsi, Python no-op / Go no-op extender", "localcsi-python-noop", "localcsi-go-noop")
AGAINST = Comparison("all localcsi, this tree's extender / --against's", "localcsi-extender", "localcsi-against")


def sides_of(comparisons: list[Comparison]) -> list[str]:
    wanted = {name for comparison in comparisons for name in (comparison.side, comparison.reference)}
    return [name for name in SIDES if name in wanted]


def schedule_round(
    cluster: KubeCluster, namespace: str, workload: Workload, side: Side, extender: ExtenderProcess, *, url: str | None
) -> tuple[float, str]:
    """Pods per second one kube-scheduler reaches on the workload's backlog, and what localcsi's extender
    did meanwhile: the mean time per verb inside its server, and its CPU seconds (informers included),
    which on this machine are taken from the scheduler, the apiserver and etcd whichever side runs."""
    core = client.CoreV1Api(cluster.api_client())
    workload.create(core, namespace)
    decisions = Decisions(cluster.kube_api(), namespace)
    before = server_seconds(url)
    cpu_before = process_cpu_seconds(extender)
    with ExitStack() as stack:
        if side.capacity_tracking:
            stack.enter_context(capacity_tracking(cluster))
        stack.enter_context(KubeScheduler(cluster, extender_url=url, managed_resources=side.marked))
        assert extender.proc is not None
        sampler = CpuSampler({**pids_by_command(CONTROL_PLANE), "extender": extender.proc.pid})
        first, last = decisions.window(workload.pods)
        samples = sampler.stop()
    rate = (workload.pods - 1) / (last - first)
    spent = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu_per_pod(samples, first, last, workload.pods).items())
    inside = describe_server_time(before, server_seconds(url))
    inside += f" (localcsi extender CPU {process_cpu_seconds(extender) - cpu_before:.2f} s;"
    inside += f" machine {busy_cores(samples, first, last):.2f} of {CORES} cores busy from first decision to last;"
    inside += f" CPU ms per pod meanwhile: {spent})"
    # Gone at once (no kubelet); the PVCs stay, with selected-node, which the extender counts as committed.
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    return rate, inside


def unthrottled_config(*args: Any, **kwargs: Any) -> dict[str, Any]:
    config = SCHEDULER_CONFIG(*args, **kwargs)
    config["clientConnection"].update(UNTHROTTLED)
    return config


SCHEDULER_CONFIG = scheduler_module.scheduler_config
scheduler_module.scheduler_config = unthrottled_config  # what KubeScheduler.start writes


@contextmanager
def capacity_tracking(cluster: KubeCluster) -> Iterator[None]:
    """The CSIDriver with storageCapacity: kube-scheduler's VolumeBinding then checks CSIStorageCapacity."""
    storage = client.StorageV1Api(cluster.api_client())
    storage.create_csi_driver(
        {"metadata": {"name": DRIVER_NAME}, "spec": {"attachRequired": False, "storageCapacity": True}}
    )
    try:
        yield
    finally:
        storage.delete_csi_driver(DRIVER_NAME)


def publish_capacities(cluster: KubeCluster, nodes: list[str]) -> None:
    """One CSIStorageCapacity per node for the class, as the external-provisioner publishes them; read only
    while the CSIDriver says storageCapacity (the capacity side)."""
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": CAPACITY_NAMESPACE}})
    storage = client.StorageV1Api(cluster.api_client())
    for node in nodes:
        body = {
            "metadata": {"name": f"capacity-{node}"},
            "storageClassName": STORAGE_CLASS,
            "nodeTopology": {"matchLabels": {TOPOLOGY_KEY: node}},
            "capacity": f"{NODE_GIB}Gi",
            "maximumVolumeSize": f"{NODE_GIB}Gi",
        }
        storage.create_namespaced_csi_storage_capacity(CAPACITY_NAMESPACE, body)


def process_cpu_seconds(extender: ExtenderProcess) -> float:
    """User and system CPU seconds of the extender's process so far, from /proc."""
    assert extender.proc is not None
    ticks = process_ticks(extender.proc.pid)
    assert ticks is not None, f"the extender (pid {extender.proc.pid}) is gone"
    return ticks / TICKS_PER_SECOND


LIVE_READS = "claims read live"  # a pseudo-verb of server_seconds: (PVCs filter read from the apiserver, 0)


def server_seconds(url: str | None) -> dict[str, tuple[float, float]]:
    """Per verb, the (sum, count) of localcsi's extender server's own request timings; and under
    LIVE_READS the PVCs its filter had to read live, its informer being behind (each such read is an
    apiserver round trip inside filter's time)."""
    if url is None:
        return {}
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310 (http on loopback)
            text = response.read().decode()
    except urllib.error.HTTPError:  # not localcsi's server (the Go no-op extender)
        return {}
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        if line.startswith("localcsi_extender_claims_read_live_total "):
            found[LIVE_READS] = [float(line.split()[1]), 0.0]
        for suffix, at in (("_sum", 0), ("_count", 1)):
            prefix = f'localcsi_extender_request_seconds{suffix}{{verb="'
            if line.startswith(prefix):
                verb, _, value = line[len(prefix) :].partition('"} ')
                found.setdefault(verb, [0.0, 0.0])[at] = float(value)
    return {verb: (total, count) for verb, (total, count) in found.items()}


def describe_server_time(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> str:
    parts = []
    for verb, (total, count) in sorted(after.items()):
        old_total, old_count = before.get(verb, (0.0, 0.0))
        if verb == LIVE_READS:
            parts.append(f"{total - old_total:.0f} PVCs read live")
        elif count > old_count:
            calls = count - old_count
            parts.append(f"{verb} {calls:.0f} x {(total - old_total) / calls * 1000:.2f} ms")
    return f" (inside the server: {', '.join(parts)})" if parts else ""


@contextmanager
def floor_extender(argv: list[str], port: int, env: dict[str, str] | None) -> Iterator[str]:
    """A no-op extender process on ``port`` (in ``env``, or this environment), answering /healthz, for
    the length of the block."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{argv[0]} to answer /healthz", lambda: _healthy(proc, url), 30, 0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _healthy(proc: subprocess.Popen[bytes], url: str) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 (http on loopback)
            return True
    except OSError:
        return False


def interpreter(python: str) -> str:
    """What `python` is: implementation, version and build (Debian's is built with PGO and LTO, pyenv's by
    default with neither), as the run's first line records it."""
    describe = (
        "import platform; print(platform.python_implementation(), platform.python_version(), platform.python_build())"
    )
    return subprocess.run([python, "-c", describe], capture_output=True, text=True, check=True).stdout.strip()


def build_go_noop(scratch: str) -> list[str]:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise RuntimeError("the Go no-op extender needs Go to build benchmarks/noop_extender")
    binary = str(Path(scratch) / "noop_extender")
    subprocess.run([go, "build", "-o", binary, str(HERE / "noop_extender" / "main.go")], check=True)
    return [binary]


def prepare_cluster(cluster: KubeCluster, nodes: int) -> None:
    storage = client.StorageV1Api(cluster.api_client())
    storage.create_storage_class(
        {
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": DRIVER_NAME,
            "volumeBindingMode": "WaitForFirstConsumer",
            "parameters": {"volumeType": "LVM"},
        }
    )
    names = [f"node-{index:04d}" for index in range(nodes)]
    for name in names:  # every side sees the same nodes, topology label included
        add_storage_node(cluster, name, {"localcsi-pool-0": NODE_GIB * GIB}, labels={TOPOLOGY_KEY: name})
    publish_capacities(cluster, names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    # 300-pod rounds (about one second each) gave the same code 0.69 to 1.03 of the Go no-op from round
    # to round; 1000-pod rounds, within 0.1 (docs/extender.md, session 20)
    parser.add_argument("--pods", type=int, default=1000, help="pods per round of the all-localcsi sides")
    parser.add_argument("--mixed-pods", type=int, default=1000, help="pods per round of the mixed sides")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, alternating")
    parser.add_argument("--only", nargs="+", choices=sorted(COMPARISONS), default=sorted(COMPARISONS))
    parser.add_argument("--python-noop", action="store_true", help="also localcsi's server over a no-op extender")
    parser.add_argument(
        "--python",
        default=SHIPPED_PYTHON if Path(SHIPPED_PYTHON).exists() else sys.executable,
        help="the interpreter that runs localcsi's extender and --python-noop's server, with this environment's"
        f" packages (the same CPython minor version); default {SHIPPED_PYTHON}, the one the localcsi image"
        " runs, where it exists, else this one",
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="SRC",
        help="also localcsi's extender run from another checkout's src/ directory, a side of its own that"
        " this tree's extender is compared with round by round (an A/B of two versions in one run)",
    )
    args = parser.parse_args()
    print(f"localcsi's extender runs on {args.python}: {interpreter(args.python)}", flush=True)
    comparisons = [comparison for name in args.only for comparison in COMPARISONS[name]]
    comparisons += [PYTHON_NOOP] if args.python_noop else []
    comparisons += [AGAINST] if args.against else []
    sides = sides_of(comparisons)
    rates: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as scratch, KubeCluster() as cluster:
        floors = {"python-noop": [args.python, str(HERE / "noop_extender.py")]}
        floor_envs = {"python-noop": python_env(args.python)}
        if "localcsi-go-noop" in sides:
            floors["go-noop"] = build_go_noop(scratch)
        prepare_cluster(cluster, args.nodes)
        extender = ExtenderProcess(cluster, free_port(), python=args.python).start()  # at the shipped log level
        extenders = {"localcsi": extender}
        if args.against:
            against = ExtenderProcess(cluster, free_port(), source=args.against.resolve(), python=args.python)
            extenders["against"] = against.start()
        try:
            for round_index in range(args.rounds):
                for name in side_order(sides, round_index):
                    side = SIDES[name]
                    pods = args.mixed_pods if side.mixed else args.pods
                    workload = Workload(pods, 0.1 if side.mixed else 1.0, side.marked, STORAGE_CLASS)
                    namespace = f"bench-{name}-{round_index}"
                    with ExitStack() as stack:
                        url = None
                        serving = extenders.get(side.extender or "", extender)  # its CPU is the side's
                        if side.extender in extenders:
                            url = serving.url
                        elif side.extender is not None:
                            port = free_port()
                            url = stack.enter_context(
                                floor_extender(
                                    [*floors[side.extender], f"127.0.0.1:{port}"], port, floor_envs.get(side.extender)
                                )
                            )
                        rate, inside = schedule_round(cluster, namespace, workload, side, serving, url=url)
                    rates[name].append(rate)
                    print(f"round {round_index} {name:20s}: {rate:6.1f} pods/s{inside}", flush=True)
        finally:
            for process in extenders.values():
                process.stop()
    print(f"nodes={args.nodes}, pods/round={args.pods} (mixed {args.mixed_pods}), {args.rounds} rounds")
    for name in sides:
        rounds = ", ".join(f"{rate:.0f}" for rate in rates[name])
        print(f"  {name:20s} {statistics.mean(rates[name]):7.1f} pods/s  (rounds {rounds})")
    for comparison in comparisons:
        print(describe(comparison, round_ratios(rates, comparison.side, comparison.reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
