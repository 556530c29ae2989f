"""The ``localcsi`` command: global logging flags and one subcommand per component."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Final, cast

from localcsi import DRIVER_NAME, __version__, logs, memory
from localcsi.cli_flag_types import (
    absolute_path,
    device_pattern,
    endpoint,
    host_port,
    int_at_least,
    log_level,
    mount_point_pattern,
    optional_absolute_path,
    optional_host_port,
)

log = logging.getLogger(__name__)

Runner = Callable[[argparse.Namespace], int]

LOG_LEVEL_ENV: Final = "LOCALCSI_LOG_LEVEL"

# Subcommand -> "module:function" that takes the parsed arguments and returns the exit status.
# Imported only when that subcommand runs, so `localcsi --help` never loads grpc or the Kubernetes API client.
COMMAND_RUNNERS: Final[dict[str, str]] = {
    "plugin": "localcsi.plugin.main:run",
    "agent": "localcsi.agent.main:run",
    "controller": "localcsi.controller.main:run",
    "extender": "localcsi.extender.main:run",
    "webhook": "localcsi.webhook.main:run",
    "status": "localcsi.status:run",
}


def resolve_runner(command: str) -> Runner:
    module_name, _, function_name = COMMAND_RUNNERS[command].partition(":")
    return cast(Runner, getattr(importlib.import_module(module_name), function_name))


def default_node_name() -> str:
    return os.environ.get("NODE_NAME") or os.environ.get("KUBE_NODE_NAME") or socket.gethostname()


def _add_logging_flags(parser: argparse.ArgumentParser, level_default: str, format_default: str) -> None:
    add = parser.add_argument
    level_help = f"minimum level logged (default: info, or ${LOG_LEVEL_ENV})"
    add("--log-level", type=log_level, choices=logs.LEVELS, default=level_default, help=level_help)
    add("--log-format", choices=logs.FORMATS, default=format_default, help="default: json")


def _add_kubeconfig(parser: argparse.ArgumentParser) -> None:
    help_text = "kubeconfig file (default: in-cluster config, else $KUBECONFIG)"
    parser.add_argument("--kubeconfig", metavar="PATH", help=help_text)


def _add_metrics_address(parser: argparse.ArgumentParser) -> None:
    help_text = "serve Prometheus GET /metrics, with GET /healthz beside it, there (default: empty, disabled)"
    parser.add_argument("--metrics-address", type=optional_host_port, default="", metavar="HOST:PORT", help=help_text)


def _add_lvm_nsenter(parser: argparse.ArgumentParser) -> None:
    help_text = "run the host's lvm via nsenter into PID 1's mount namespace (in a container)"
    parser.add_argument("--lvm-nsenter", action="store_true", help=help_text)


def _add_plugin_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--mode",
        choices=("standalone", "controller", "node"),
        default="standalone",
        help=(
            "standalone: all CSI services in one process; controller, node: the cluster-mode halves "
            "(default: %(default)s)"
        ),
    )
    add(
        "--endpoint",
        type=endpoint,
        default="unix:///csi/csi.sock",
        help="gRPC address, unix:///PATH or tcp://HOST:PORT (default: %(default)s)",
    )
    add(
        "--node-id",
        default=default_node_name(),
        help="CSI node ID (default: $NODE_NAME, else $KUBE_NODE_NAME, else the hostname: %(default)s)",
    )
    add("--socket-group", metavar="GROUP", help="make the unix socket 0660 for GROUP (default: 0600)")
    _add_kubeconfig(parser)
    _add_lvm_nsenter(parser)
    add(
        "--max-volumes-per-node",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="volume limit per node reported to Kubernetes; 0 = unlimited (default)",
    )
    _add_metrics_address(parser)
    add(
        "--vg-pattern",
        action="append",
        dest="vg_patterns",
        metavar="REGEX",
        help="use only VGs whose name matches; repeatable (default: ^localcsi-.+$)",
    )
    add(
        "--device",
        action="append",
        dest="device_patterns",
        type=device_pattern,
        metavar="GLOB",
        help=(
            "a whole disk whose /dev path or /dev/disk/by-id link matches GLOB may be given to one "
            "volumeType Device volume (standalone mode), if blank; repeatable (default: none, no Device volumes)"
        ),
    )
    add(
        "--mount-point",
        action="append",
        dest="mount_point_patterns",
        type=mount_point_pattern,
        metavar="GLOB",
        help=(
            "a mounted filesystem whose mount point matches GLOB may be given whole to one volumeType "
            "MountPoint volume (standalone mode), if empty; repeatable (default: none, no MountPoint volumes)"
        ),
    )
    add(
        "--registration-dir",
        type=optional_absolute_path,
        default="",
        metavar="DIR",
        help=(
            f"register with the kubelet through DIR/{DRIVER_NAME}-reg.sock, usually "
            "/var/lib/kubelet/plugins_registry (node and standalone modes; default: empty, no registration)"
        ),
    )
    add(
        "--kubelet-registration-path",
        type=optional_absolute_path,
        default="",
        metavar="PATH",
        help=(
            "the CSI socket's path as the kubelet sees it on the host, e.g. "
            f"/var/lib/kubelet/plugins/{DRIVER_NAME}/csi.sock; required with --registration-dir"
        ),
    )
    add(
        "--health-address",
        type=optional_host_port,
        default="",
        metavar="HOST:PORT",
        help="serve GET /healthz there, which calls our own Identity Probe (default: empty, disabled)",
    )
    add(
        "--cgroup-root",
        type=optional_absolute_path,
        default="/sys/fs/cgroup",
        metavar="DIR",
        help="the host's cgroup filesystem, where pods' IO limits are set (node and standalone modes; "
        "default: %(default)s)",
    )
    add(
        "--io-limits-resync-seconds",
        type=int_at_least(1),
        default=10,
        metavar="N",
        help="re-apply IO limits to running pods every N seconds: modified limits and cgroup v1 containers "
        "started after the publish get them (default: %(default)s)",
    )
    add(
        "--ephemeral-collect-seconds",
        type=int_at_least(1),
        default=60,
        metavar="N",
        help="every N seconds (and at start), remove the inline ephemeral volumes whose pods have left this "
        "node without their unpublish completing, e.g. while the plugin was down (default: %(default)s)",
    )


def _plugin_flag_problem(args: argparse.Namespace) -> str | None:
    if args.device_patterns and args.mode != "standalone":
        return "--device: Device volumes are provisioned in standalone mode only, so far"
    if args.mount_point_patterns and args.mode != "standalone":
        return "--mount-point: MountPoint volumes are provisioned in standalone mode only, so far"
    if args.registration_dir and not args.kubelet_registration_path:
        return "--kubelet-registration-path is required with --registration-dir"
    if args.kubelet_registration_path and not args.registration_dir:
        return "--kubelet-registration-path is only used with --registration-dir"
    if args.registration_dir and args.mode == "controller":
        return "--registration-dir: a --mode controller plugin has no Node service to register with the kubelet"
    return None


def _add_agent_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--node-name",
        default=default_node_name(),
        help="node to manage (default: $NODE_NAME, else $KUBE_NODE_NAME, else the hostname: %(default)s)",
    )
    _add_kubeconfig(parser)
    add(
        "--resync-seconds",
        type=int_at_least(1),
        default=60,
        metavar="SECONDS",
        help="rescan disks and VGs this often (default: %(default)s)",
    )
    _add_lvm_nsenter(parser)
    add(
        "--orphan-gc-grace",
        type=int_at_least(0),
        default=0,
        metavar="SECONDS",
        help="with --orphan-gc, remove LVs orphaned (ours, with no LogicalVolume) for this long (default: 0)",
    )
    add(
        "--orphan-gc",
        action="store_true",
        help="remove orphaned LVs after --orphan-gc-grace; without it they are only reported as Events",
    )
    _add_metrics_address(parser)


def _add_controller_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    _add_kubeconfig(parser)
    add(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a Lease so that one replica acts at a time (default: on)",
    )
    add(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE") or "localcsi-system",
        help="namespace of the Lease (default: $POD_NAMESPACE, else localcsi-system)",
    )
    add("--lease-name", default="localcsi-controller", help="name of the Lease (default: %(default)s)")
    add(
        "--init-config",
        default="localcsi",
        metavar="NAME",
        help="the NodeLocalStorageInitConfig to apply; others are marked NotSelected (default: %(default)s)",
    )
    add(
        "--resync-seconds",
        type=int_at_least(1),
        default=60,
        metavar="SECONDS",
        help="reconcile everything this often, besides on every change (default: %(default)s)",
    )
    _add_metrics_address(parser)


def _add_extender_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--listen",
        type=host_port,
        default="127.0.0.1:8099",
        metavar="HOST:PORT",
        help="HTTP address kube-scheduler calls (default: %(default)s)",
    )
    _add_kubeconfig(parser)
    add(
        "--strategy",
        choices=("binpack", "spread"),
        default="binpack",
        help="binpack: prefer the fullest node that fits; spread: the emptiest (default: %(default)s)",
    )
    add(
        "--reservation-ttl",
        type=int_at_least(1),
        default=60,
        metavar="SECONDS",
        help="release space held for a pod that nothing committed to within this time (default: %(default)s)",
    )


def _add_webhook_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--listen",
        type=host_port,
        default="0.0.0.0:9443",
        metavar="HOST:PORT",
        help="HTTPS address kube-apiserver calls, POST /mutate (default: %(default)s)",
    )
    add("--tls-cert-file", type=absolute_path, required=True, metavar="PATH", help="serving certificate (PEM)")
    add("--tls-key-file", type=absolute_path, required=True, metavar="PATH", help="its private key (PEM)")
    _add_kubeconfig(parser)
    _add_metrics_address(parser)


def _add_status_flags(parser: argparse.ArgumentParser) -> None:
    _add_kubeconfig(parser)
    parser.add_argument("--output", choices=("table", "json"), default="table", help="default: table")


_SUBCOMMANDS: Final[dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]] = {
    "plugin": ("the CSI driver: Identity, Controller and Node services over gRPC", _add_plugin_flags),
    "agent": ("node agent: discovers disks and VGs, reconciles this node's volumes", _add_agent_flags),
    "controller": ("cluster controller: NodeLocalStorage per node, cleanup", _add_controller_flags),
    "extender": ("kube-scheduler extender: capacity-aware filter and score", _add_extender_flags),
    "webhook": ("admission webhook: marks pods that use localcsi for the extender", _add_webhook_flags),
    "status": ("show nodes, VGs, capacity and volumes", _add_status_flags),
}


# Checks across flags, which argparse cannot express: command -> the problem with its flags, or None.
_FLAG_CHECKS: Final[dict[str, Callable[[argparse.Namespace], str | None]]] = {"plugin": _plugin_flag_problem}


def _build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="localcsi", description="Local disks as Kubernetes volumes.")
    parser.add_argument("--version", action="version", version=f"localcsi {__version__}")
    _add_logging_flags(parser, os.environ.get(LOG_LEVEL_ENV) or "info", "json")
    # The same flags after the subcommand; SUPPRESS keeps the top-level value unless one is given.
    logging_flags = argparse.ArgumentParser(add_help=False)
    _add_logging_flags(logging_flags, argparse.SUPPRESS, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command_parsers: dict[str, argparse.ArgumentParser] = {}
    for name, (summary, add_flags) in _SUBCOMMANDS.items():
        command_parsers[name] = commands.add_parser(name, help=summary, description=summary, parents=[logging_flags])
        add_flags(command_parsers[name])
    return parser, command_parsers


def build_parser() -> argparse.ArgumentParser:
    return _build_parsers()[0]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse, then check flags against each other; a problem exits 2 with the command's usage."""
    parser, command_parsers = _build_parsers()
    args = parser.parse_args(argv)
    check = _FLAG_CHECKS.get(args.command)
    if check is not None and (problem := check(args)):
        command_parsers[args.command].error(problem)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    memory.pin_mmap_threshold()  # every component is long-lived: large buffers must not stay resident
    return resolve_runner(args.command)(args)
