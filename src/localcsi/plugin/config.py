"""One Config for the plugin process, built from the command line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from localcsi import DRIVER_NAME
from localcsi.core.exclusive import is_device_vg, is_mountpoint_group

DEFAULT_VG_PATTERNS = (r"^localcsi-.+$",)


class Mode(StrEnum):
    STANDALONE = "standalone"
    CONTROLLER = "controller"
    NODE = "node"


@dataclass(frozen=True)
class PluginConfig:
    mode: Mode = Mode.STANDALONE
    endpoint: str = "unix:///csi/csi.sock"
    node_id: str = "localhost"
    driver_name: str = DRIVER_NAME
    socket_group: str | None = None
    lvm_nsenter: bool = False
    max_volumes_per_node: int = 0
    metrics_address: str = ""
    # Kubelet plugin registration (in place of node-driver-registrar); "": do not register.
    registration_dir: str = ""
    # The CSI socket's path as the kubelet sees it on the host, told to the kubelet at registration.
    kubelet_registration_path: str = ""
    # HOST:PORT of the HTTP /healthz that probes our own Identity service; "": off.
    health_address: str = ""
    # The host's cgroup filesystem (a hostPath in the DaemonSet), where pods' IO limits are set.
    cgroup_root: str = "/sys/fs/cgroup"
    io_limits_resync_seconds: float = 10.0
    ephemeral_collect_seconds: float = 60.0
    # Only VGs whose name matches one of these are ever used: never touch a VG not given to us.
    vg_patterns: tuple[str, ...] = DEFAULT_VG_PATTERNS
    # Whole disks that Device volumes may take (globs of /dev paths, by-id links included); none: no
    # Device volumes. Standalone mode.
    device_patterns: tuple[str, ...] = ()
    # Mount points that MountPoint volumes may take (globs of absolute paths); none: no MountPoint
    # volumes. Standalone mode.
    mount_point_patterns: tuple[str, ...] = ()
    # How long a controller call may wait on the node (cluster mode) before DEADLINE_EXCEEDED.
    operation_timeout: float = 60.0
    # Cluster mode (--mode controller): the apiserver to write LogicalVolumes to; None: in-cluster.
    kubeconfig: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.registration_dir and not self.kubelet_registration_path:
            raise ValueError("registration_dir needs kubelet_registration_path")
        if self.registration_dir and not self.serves_node:
            raise ValueError(f"a {self.mode.value} plugin serves no Node service and cannot register with the kubelet")

    @property
    def registers_with_kubelet(self) -> bool:
        return bool(self.registration_dir)

    @property
    def serves_controller(self) -> bool:
        return self.mode in (Mode.STANDALONE, Mode.CONTROLLER)

    @property
    def serves_node(self) -> bool:
        return self.mode in (Mode.STANDALONE, Mode.NODE)

    def vg_allowed(self, vg_name: str) -> bool:
        if is_mountpoint_group(vg_name):
            return False  # a reserved name in MountPoint volumes' ids, never a VG to use
        if is_device_vg(vg_name) and (self.device_patterns or self.mode is Mode.NODE):
            return True  # a Device volume's own VG, on a disk --device (or, in cluster mode, the agent's config) gave
        return any(re.search(pattern, vg_name) for pattern in self.vg_patterns)
