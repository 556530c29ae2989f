"""``localcsi agent``: the node agent's process.

At start it activates the LVs of managed VGs, runs a first cycle, then starts the LogicalVolume
reconciler in a thread. After that it runs a cycle every ``--resync-seconds``, and at once when its
NodeLocalStorage's spec changes (a watch on that one resource, by field selector). SIGTERM or
SIGINT ends the loop; a second signal forces the exit. Exit status: 0 after a signal, 1 when the
reconciler stopped on its own or the agent could not start.

With ``--metrics-address`` it serves ``/metrics`` from each cycle's snapshot (``localcsi.metrics.agent``:
a scrape runs no command) and ``/healthz``, which fails once no cycle has discovered storage for three
resync periods.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

from localcsi.agent.cycle import Agent
from localcsi.agent.lv_reconciler import LogicalVolumeReconciler
from localcsi.agent.mountpoint_init import FSTAB, HOST_FSTAB_FROM_CONTAINER
from localcsi.agent.orphans import OrphanTracker
from localcsi.agent.status import StatusPublisher
from localcsi.core.nodestorage import StorageSpec, parse_spec
from localcsi.k8s.client import api_client
from localcsi.k8s.events import EventRecorder
from localcsi.k8s.informer import Informer, custom_source
from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources
from localcsi.lifecycle import Lifecycle
from localcsi.logs import fields
from localcsi.lvm.runner import SubprocessRunner
from localcsi.metrics import http
from localcsi.metrics.agent import AgentCollector
from localcsi.metrics.volumes import PhaseCollector
from localcsi.resources.logicalvolume import node_selector

log = logging.getLogger(__name__)

COMPONENT = "localcsi-agent"
SYNC_TIMEOUT = 30.0
_POLL = 0.5


class SpecChanges:
    """Sets ``wake`` when the resource's generation (its spec) changes; status writes do not count."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self._generation: int | None = None

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        generation = (obj.get("metadata") or {}).get("generation")
        if event_type == "DELETED" or generation != self._generation:
            self._generation = generation
            self.wake.set()


def _sleep(lifecycle: Lifecycle, wake: threading.Event, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not lifecycle.should_exit.is_set() and not wake.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        wake.wait(min(remaining, _POLL))


def managed_vgs(informer: Informer, node: str) -> Callable[[str], bool]:
    """The VGs the agent may create LVs in: those its last report let through listConfig."""

    def allowed(vg: str) -> bool:
        status = (informer.get(node) or {}).get("status") or {}
        return vg in ((status.get("filteredStorageInfo") or {}).get("volumeGroups") or [])

    return allowed


def own_spec(informer: Informer, node: str) -> Callable[[], StorageSpec]:
    """This node's NodeLocalStorage spec as last seen: what Device and MountPoint volumes may take."""
    return lambda: parse_spec(((informer.get(node) or {}).get("spec")) or {})


def _start_reconciler(reconciler: LogicalVolumeReconciler, lifecycle: Lifecycle) -> threading.Thread:
    """The LogicalVolume reconciler in a thread; if it stops, the agent stops too."""

    def run() -> None:
        try:
            reconciler.run()
        except Exception as error:
            log.exception("the LogicalVolume reconciler failed")
            lifecycle.request_exit(f"LogicalVolume reconciler failed: {error}")
            return
        if not lifecycle.should_exit.is_set():
            lifecycle.request_exit("LogicalVolume reconciler stopped")

    thread = threading.Thread(target=run, name="lv-reconciler", daemon=True)
    thread.start()
    return thread


def _cycle(agent: Agent, metrics: AgentCollector, nls: dict[str, Any] | None) -> None:
    """One cycle, its result recorded for /metrics; a failure is logged and counted, never raised."""
    try:
        result = agent.cycle(nls)
    except Exception:
        metrics.failed()
        log.exception("agent cycle failed; retrying at the next one")
        return
    spec = parse_spec((nls or {}).get("spec") or {}) if nls is not None else None
    metrics.record(
        result.inventory,
        spec,
        seconds=result.seconds,
        commands=result.commands,
        lvm_commands=result.lvm_commands,
        orphans=result.orphans,
    )


def run(args: argparse.Namespace) -> int:
    node = str(args.node_name)
    runner = SubprocessRunner(nsenter=bool(args.lvm_nsenter))
    grace = float(args.orphan_gc_grace)
    collect = bool(args.orphan_gc)
    try:
        api = api_client(args.kubeconfig)
    except Exception as error:
        log.error("cannot build a Kubernetes client: %s", error, extra=fields(kubeconfig=args.kubeconfig))
        return 1
    volumes = CustomResources(api, LOGICAL_VOLUME)
    selector = node_selector(node)
    agent = Agent(
        node,
        runner,
        StatusPublisher(CustomResources(api, NODE_LOCAL_STORAGE), EventRecorder(api, COMPONENT, node)),
        lambda: volumes.list(selector)[0],
        orphans=OrphanTracker(grace, collect),
        fstab=HOST_FSTAB_FROM_CONTAINER if args.lvm_nsenter else FSTAB,
    )
    changes = SpecChanges()
    # A watch on this node's one resource (by name), not on every node's.
    own = custom_source(CustomResources(api, NODE_LOCAL_STORAGE), field_selector=f"metadata.name={node}")
    informer = Informer(*own)
    informer.add_handler(changes)
    log.info(
        "agent starting",
        extra=fields(node=node, resync_seconds=args.resync_seconds, orphan_gc=collect, orphan_gc_grace=grace),
    )
    metrics = AgentCollector(node, float(args.resync_seconds))
    with Lifecycle() as lifecycle, contextlib.ExitStack() as serving:
        reconciler = LogicalVolumeReconciler(
            api, node, runner, lifecycle, vg_allowed=managed_vgs(informer, node), storage_spec=own_spec(informer, node)
        )
        if args.metrics_address:
            REGISTRY.register(PhaseCollector(node, reconciler.informer.cache))
            http.serve(serving, metrics_address=args.metrics_address, prober=metrics.stale_reason)
        informer.start(lifecycle.should_exit.is_set, name="nls-informer")
        if not informer.wait_synced(SYNC_TIMEOUT):
            log.warning("NodeLocalStorage %s not listed within %.0fs; going on without it", node, SYNC_TIMEOUT)
        agent.activate(informer.get(node))
        started = None
        while not lifecycle.should_exit.is_set():
            changes.wake.clear()
            _cycle(agent, metrics, informer.get(node))
            if started is None:
                started = _start_reconciler(reconciler, lifecycle)
            _sleep(lifecycle, changes.wake, float(args.resync_seconds))
        stopped_by_signal = lifecycle.received_signal is not None
    log.info("agent stopped", extra=fields(node=node))
    return 0 if stopped_by_signal else 1
