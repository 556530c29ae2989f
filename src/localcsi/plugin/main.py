"""`localcsi plugin`: build the Config from the command line, serve until told to stop."""

from __future__ import annotations

import argparse
import logging

from localcsi.lifecycle import Lifecycle
from localcsi.logs import fields
from localcsi.plugin.config import DEFAULT_VG_PATTERNS, Mode, PluginConfig
from localcsi.plugin.server import build_server

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0


def config_from_args(args: argparse.Namespace) -> PluginConfig:
    return PluginConfig(
        mode=Mode(args.mode),
        endpoint=args.endpoint,
        node_id=args.node_id,
        socket_group=args.socket_group,
        lvm_nsenter=args.lvm_nsenter,
        max_volumes_per_node=args.max_volumes_per_node,
        metrics_address=args.metrics_address,
        vg_patterns=tuple(args.vg_patterns or DEFAULT_VG_PATTERNS),
        kubeconfig=args.kubeconfig,
    )


def serve(config: PluginConfig) -> int:
    with Lifecycle() as lifecycle:
        server = build_server(config)
        server.start()
        log.info(
            "serving CSI %s on %s",
            config.mode.value,
            config.endpoint,
            extra=fields(mode=config.mode.value, endpoint=config.endpoint, node_id=config.node_id),
        )
        lifecycle.wait()
        server.stop(grace=SHUTDOWN_GRACE_SECONDS).wait()
        log.info("stopped")
    return 0


def run(args: argparse.Namespace) -> int:
    return serve(config_from_args(args))
