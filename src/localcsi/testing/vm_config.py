"""What a node VM boots with: `VMConfig`, read by `vm.NodeVM` (the HOST_ALIAS, HOST_LOOPBACK and
SITE_MOUNT its comments name are vm.py's)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class VMConfig:
    disks_gib: list[int] = field(default_factory=lambda: [4, 4])
    # Blank disks on a virtio-scsi controller that report a rotation rate of 1 (non-rotating): the guest
    # sees them as SSDs (/sys/block/sdX/queue/rotational 0), the virtio disks as rotating. Guest paths:
    # ssd_disks(); the guest needs `modprobe virtio_scsi sd_mod` (load_ssd_disks) first.
    ssd_disks_gib: list[int] = field(default_factory=list)
    memory_mib: int = 2048
    # One vCPU: the node tier runs two VMs at once on two host cores (the cluster tier its VM beside the
    # e2e node), and there one vCPU each did the same work sooner than two (three node modules on two
    # workers: 398 s against 464 s, session 14), the second vCPU only adding MTTCG's cross-vCPU
    # synchronisation and its own wakeups. The e2e node, its pods side by side, keeps two (e2e_vm.py).
    cpus: int = 1
    # guest TCP port -> host loopback port (0 picks a free one)
    port_forwards: dict[int, int] = field(default_factory=dict)
    # host loopback ports the guest reaches at HOST_ALIAS:<same port>
    guest_forwards: list[int] = field(default_factory=list)
    # Let the guest open connections to the host (HOST_LOOPBACK:<port> reaches 127.0.0.1:<port>).
    # Off by default: `restrict=on` keeps a test guest from reaching anything it was not given.
    host_loopback: bool = False
    # A read-only ext4 image attached after the data disks (see files_disk.py): how large files such as
    # binaries and container images get in, faster than the guest agent's base64 transfer.
    files_disk: Path | None = None
    # Raw images each VM gets a copy-on-write qcow2 overlay of, attached after the data disks and before
    # the files disk: cached disks a guest writes to, such as containerd's image store.
    backed_disks: list[Path] = field(default_factory=list)
    # The project and its dependencies as a read-only ext4 image (install.site_disk), attached last and
    # mounted at SITE_MOUNT at every boot: install_project then copies nothing into the guest.
    site_disk: Path | None = None
    boot_timeout: float = float(os.environ.get("LOCALCSI_BOOT_TIMEOUT", "240"))
    # "v2", or "v1" for the legacy per-controller hierarchies; read at each boot, so a reboot can switch.
    cgroup_version: str = "v2"
