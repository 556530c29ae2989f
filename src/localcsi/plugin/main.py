"""`localcsi plugin`: build the Config from the command line, serve until told to stop.

Besides the CSI gRPC server, the process may serve the kubelet's plugin registration
(``--registration-dir``), an HTTP ``/healthz`` (``--health-address``) and Prometheus ``/metrics``
with ``/healthz`` beside it (``--metrics-address``; one server when both name the same address).
They stop in reverse order of starting: registration first, so that the kubelet lets go before the
CSI socket goes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging

from localcsi.driver.ephemeral import EphemeralVolumes
from localcsi.driver.pod_limits import PodIoLimits
from localcsi.lifecycle import Lifecycle
from localcsi.logs import fields
from localcsi.memory import disable_huge_pages
from localcsi.periodic import Periodic
from localcsi.plugin.config import DEFAULT_VG_PATTERNS, Mode, PluginConfig
from localcsi.plugin.io_limits import IoLimitResync, pod_io_limits, register_io_limit_metrics
from localcsi.plugin.node import ephemeral_volumes
from localcsi.plugin.server import build_server

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
# The exit status after the kubelet rejected our registration: the pod restarts and registers again.
REGISTRATION_REJECTED_EXIT = 1


def config_from_args(args: argparse.Namespace) -> PluginConfig:
    return PluginConfig(
        mode=Mode(args.mode),
        endpoint=args.endpoint,
        node_id=args.node_id,
        socket_group=args.socket_group,
        lvm_nsenter=args.lvm_nsenter,
        max_volumes_per_node=args.max_volumes_per_node,
        metrics_address=args.metrics_address,
        registration_dir=args.registration_dir,
        kubelet_registration_path=args.kubelet_registration_path,
        health_address=args.health_address,
        vg_patterns=tuple(args.vg_patterns or DEFAULT_VG_PATTERNS),
        device_patterns=tuple(args.device_patterns or ()),
        mount_point_patterns=tuple(args.mount_point_patterns or ()),
        kubeconfig=args.kubeconfig,
        cgroup_root=args.cgroup_root,
        io_limits_resync_seconds=float(args.io_limits_resync_seconds),
        ephemeral_collect_seconds=float(args.ephemeral_collect_seconds),
    )


def _start_http(config: PluginConfig, running: contextlib.ExitStack) -> None:
    """/healthz on --health-address, /metrics and /healthz on --metrics-address."""
    from localcsi.metrics.http import serve  # noqa: PLC0415 - only with one of the two flags
    from localcsi.plugin.health import endpoint_prober  # noqa: PLC0415

    prober = endpoint_prober(config.endpoint)
    serve(running, health_address=config.health_address, metrics_address=config.metrics_address, prober=prober)


def _start_registration(config: PluginConfig, lifecycle: Lifecycle, running: contextlib.ExitStack) -> list[str]:
    """Serve the kubelet's registration; the returned list collects the kubelet's rejections."""
    from localcsi.plugin.registration import RegistrationServer  # noqa: PLC0415 - only with --registration-dir

    rejections: list[str] = []

    def on_rejected(error: str) -> None:
        rejections.append(error)
        lifecycle.request_exit(f"the kubelet rejected the registration: {error}")

    registration = RegistrationServer(config, on_rejected)
    registration.start()
    running.callback(registration.stop, SHUTDOWN_GRACE_SECONDS)
    return rejections


def _start_io_limit_resync(limits: PodIoLimits, config: PluginConfig, running: contextlib.ExitStack) -> None:
    if config.metrics_address:
        register_io_limit_metrics(limits)
    resync = IoLimitResync(limits, config.io_limits_resync_seconds)
    resync.start()
    running.callback(resync.stop)
    running.callback(limits.close)


def _start_ephemeral_collector(
    ephemeral: EphemeralVolumes, config: PluginConfig, running: contextlib.ExitStack
) -> None:
    interval = config.ephemeral_collect_seconds
    collector = Periodic("ephemeral-collector", interval, ephemeral.collect, run_at_start=True)
    collector.start()
    running.callback(collector.stop)


def serve(config: PluginConfig) -> int:
    disable_huge_pages()  # a few MiB of small objects: 2 MiB pages only inflate the RSS (localcsi.memory)
    rejections: list[str] = []
    with Lifecycle() as lifecycle, contextlib.ExitStack() as running:
        limits = pod_io_limits(config, events=True) if config.serves_node else None
        ephemeral = ephemeral_volumes(config) if config.serves_node else None
        server = build_server(config, io_limits=limits, ephemeral=ephemeral)
        server.start()
        running.callback(lambda: server.stop(grace=SHUTDOWN_GRACE_SECONDS).wait())
        log.info(
            "serving CSI %s on %s",
            config.mode.value,
            config.endpoint,
            extra=fields(mode=config.mode.value, endpoint=config.endpoint, node_id=config.node_id),
        )
        if config.health_address or config.metrics_address:
            _start_http(config, running)
        if limits is not None:
            _start_io_limit_resync(limits, config, running)
        if ephemeral is not None:
            _start_ephemeral_collector(ephemeral, config, running)
        if config.registers_with_kubelet:
            rejections = _start_registration(config, lifecycle, running)
        lifecycle.wait()
    log.info("stopped")
    return REGISTRATION_REJECTED_EXIT if rejections else 0


def run(args: argparse.Namespace) -> int:
    return serve(config_from_args(args))
