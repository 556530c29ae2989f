"""Pods' IO limits on real adapters: the cgroup filesystem, findmnt and lvs, and Events on the pod.

``IoLimitResync`` re-applies every published volume's limits every ``--io-limits-resync-seconds``
(see ``driver/pod_limits.py`` for why a resync is needed at all).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry

from localcsi.cgroup.throttle import Cgroups
from localcsi.driver.pod_limits import PodIoLimits, PodRef, Reporter
from localcsi.fs.adapter import Filesystems
from localcsi.fs.block_devices import PROC_DISKSTATS, IoCounters, read_io_counters
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner
from localcsi.metrics.io_limits import IoLimitCollector
from localcsi.periodic import Periodic
from localcsi.plugin.config import PluginConfig

log = logging.getLogger(__name__)

EVENT_COMPONENT = "localcsi-plugin"


def _event_reporter(node_id: str) -> Reporter | None:
    """Events on the pod through the in-cluster API, when the plugin runs in a pod; else None."""
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    from localcsi.k8s.client import api_client  # noqa: PLC0415 - standalone runs need no apiserver client
    from localcsi.k8s.events import EventRecorder  # noqa: PLC0415

    recorder = EventRecorder(api_client(None), EVENT_COMPONENT, node_id)

    def report(pod: PodRef, reason: str, message: str) -> None:
        if pod.name and pod.namespace:
            involved = {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid}}  # fmt: skip
            recorder.record(involved, "Warning", reason, message)

    return report


def pod_io_limits(config: PluginConfig, *, events: bool = False) -> PodIoLimits:
    runner = SubprocessRunner(nsenter=config.lvm_nsenter)
    limits = PodIoLimits(Cgroups(config.cgroup_root), Filesystems(runner), Lvm(runner))
    reporter = _event_reporter(config.node_id) if events else None
    if reporter is not None:
        limits.report = reporter
    return limits


def register_io_limit_metrics(
    pod_limits: PodIoLimits, registry: CollectorRegistry = REGISTRY, diskstats: Path = PROC_DISKSTATS
) -> None:
    """/metrics: the volumes published and the limits in force, as the last resync found them, and each
    published volume's IO counters, read at scrape."""

    def limits() -> list[tuple[str, str, dict[tuple[str, str], int]]]:
        found = []
        for vg, lv, throttle in pod_limits.in_force.limits:
            values = {
                ("read", "bytes"): throttle.read_bps,
                ("write", "bytes"): throttle.write_bps,
                ("read", "ops"): throttle.read_iops,
                ("write", "ops"): throttle.write_iops,
            }
            found.append((vg, lv, {key: value for key, value in values.items() if value is not None}))
        return found

    def counters() -> list[tuple[str, str, IoCounters]]:
        devices = pod_limits.in_force.devices
        read = read_io_counters([device for _vg, _lv, device in devices], diskstats)
        return [(vg, lv, values) for (vg, lv, _device), values in zip(devices, read, strict=True) if values is not None]

    registry.register(IoLimitCollector(lambda: pod_limits.in_force.published, limits, counters))


class IoLimitResync(Periodic):
    def __init__(self, limits: PodIoLimits, interval: float) -> None:
        super().__init__("io-limits-resync", interval, limits.resync)
        self.limits = limits
