"""The plugin's gRPC server: one process, the services its mode calls for, a tight socket."""

from __future__ import annotations

import logging
import os
import stat
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from localcsi.csi import services
from localcsi.plugin.config import PluginConfig
from localcsi.plugin.identity import IdentityServicer
from localcsi.plugin.rpc_metrics import RpcMetricsInterceptor

if TYPE_CHECKING:
    from localcsi.driver.ephemeral import EphemeralVolumes
    from localcsi.driver.pod_limits import PodIoLimits

log = logging.getLogger(__name__)

WORKERS = 16
OWNER_ONLY = 0o600
OWNER_AND_GROUP = 0o660


def socket_path(endpoint: str) -> Path | None:
    return Path(endpoint.removeprefix("unix://")) if endpoint.startswith("unix://") else None


def remove_socket(path: Path) -> None:
    """Remove the socket at path, if there is one; refuse anything that is not a socket."""
    if not path.exists():
        return
    if not stat.S_ISSOCK(path.stat().st_mode):
        raise RuntimeError(f"{path} exists and is not a socket: refusing to remove it")
    path.unlink()


def _group_id(name: str) -> int:
    import grp  # noqa: PLC0415 - POSIX only, needed only with --socket-group

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise RuntimeError(f"--socket-group {name}: no such group") from None


def bind_private_socket(server: grpc.Server, path: Path) -> None:
    """Listen on a unix socket at path, created 0600; a stale socket there is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_socket(path)
    # Create the socket already private: chmod after bind would leave a window open.
    previous = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix:{path}")
    finally:
        os.umask(previous)
    path.chmod(OWNER_ONLY)


def bind(server: grpc.Server, config: PluginConfig) -> None:
    path = socket_path(config.endpoint)
    if path is None:
        address = config.endpoint.removeprefix("tcp://")
        if server.add_insecure_port(address) == 0:
            raise RuntimeError(f"cannot listen on {address}")
        return
    bind_private_socket(server, path)
    if config.socket_group:
        os.chown(path, -1, _group_id(config.socket_group))
        path.chmod(OWNER_AND_GROUP)


def build_server(
    config: PluginConfig, *, io_limits: PodIoLimits | None = None, ephemeral: EphemeralVolumes | None = None
) -> grpc.Server:
    """``io_limits``: the pods' IO limits the Node service enforces (shared with the plugin's resync);
    ``ephemeral``: its inline ephemeral volumes (shared with the plugin's collector)."""
    # Every call is timed and counted by gRPC code (localcsi.plugin.rpc_metrics), whatever the servicer.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="csi"),
        interceptors=[RpcMetricsInterceptor()],
    )
    services.add_identity(IdentityServicer(config), server)
    if config.serves_controller:
        from localcsi.plugin.controller import build_controller_servicer  # noqa: PLC0415

        services.add_controller(build_controller_servicer(config), server)
    if config.serves_node:
        from localcsi.plugin.node import build_node_servicer  # noqa: PLC0415

        services.add_node(build_node_servicer(config, io_limits, ephemeral), server)
    bind(server, config)
    return server
