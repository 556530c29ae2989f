"""The node VM: qemu with the cached Debian image, sparse data disks and a guest agent.

The root image is shared and read-only; each VM writes to its own qcow2 overlay, so a
reboot (stop qemu, start it again on the same overlay and disks) keeps the guest's state.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from localcsi.testing.accel import Accelerator, choose_accelerator
from localcsi.testing.guest_client import GuestClient, GuestError, Result
from localcsi.testing.image import NodeImage, build_image
from localcsi.testing.phases import Phases
from localcsi.testing.vm_config import VMConfig

GUEST_AGENT_PORT = 7000
# Inside the guest, this address reaches the host's loopback for each guest_forwards port. A guestfwd
# carries one connection at a time (it is a single qemu chardev), so it suits a simple echo or log sink.
HOST_ALIAS = "10.0.2.100"
# With VMConfig.host_loopback, slirp's gateway address reaches every port of the host's loopback, with
# as many connections as the guest opens (an HTTP client's pool, watches): the route to the apiserver.
HOST_LOOPBACK = "10.0.2.2"
# Where VMConfig.site_disk is mounted: the project's site-packages in the guest.
SITE_MOUNT = "/opt/localcsi/site"
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 init=/sbin/localcsi-init panic=-1 quiet"
# The guest kernel's RCU stall warning. Under TCG on a busy host, a boot has hung for good with one vCPU
# whose timer interrupt never came (CI, session 12: the console repeated this for 200 s until the boot
# timeout); a fresh qemu process boots. So a boot that prints it and has no guest agent STALL_GRACE
# seconds later is tried once more.
BOOT_STALL = "detected stalls on CPUs"
STALL_GRACE = 30.0
BOOT_ATTEMPTS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BootStalled(GuestError):
    """The guest kernel reported an RCU stall during boot and the guest agent never came up."""


class NodeVM:
    def __init__(self, config: VMConfig | None = None, phases: Phases | None = None) -> None:
        self.config = config or VMConfig()
        self.phases = phases or Phases()
        self.workdir = Path(tempfile.mkdtemp(prefix="localcsi-vm-"))
        self.agent_port = free_port()
        self.forwarded = {guest: host or free_port() for guest, host in self.config.port_forwards.items()}
        self.guest = GuestClient(self.agent_port)
        self.boots = 0
        self._image: NodeImage | None = None
        self._accel: Accelerator | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> NodeVM:
        if self._image is None:
            self._image = build_image(self.phases)
            self._create_disks(self._image)
        if self._accel is None:
            self._accel = choose_accelerator(self._boot_probe, self.phases)
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                with self.phases.phase(f"boot #{self.boots + 1} ({self._accel.name})"):
                    self._launch(self._accel)
                    self._wait_for_agent(self.config.boot_timeout)
                break
            except BootStalled as stalled:
                if attempt == BOOT_ATTEMPTS:
                    raise
                self.phases.note(f"the guest kernel stalled during boot; starting qemu again. {stalled}")
        self.boots += 1
        if self.config.site_disk is not None:
            self.check(["mkdir", "-p", SITE_MOUNT])
            self.check(["mount", "-o", "ro", self.site_device(), SITE_MOUNT])
        return self

    def reboot(self) -> None:
        with self.phases.phase("power off"):
            self._power_off()
        self.start()

    def stop(self) -> None:
        try:
            self._power_off()
        finally:
            if not os.environ.get("LOCALCSI_KEEP_VM"):
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> NodeVM:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def qemu_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def console(self, tail: int = 4000) -> str:
        path = self.workdir / "console.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    # -- guest access ----------------------------------------------------------------------
    def run(
        self,
        argv: list[str],
        timeout: float = 300.0,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        return self.guest.run(argv, timeout=timeout, stdin=stdin, env=env)

    def check(
        self,
        argv: list[str],
        timeout: float = 300.0,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        return self.run(argv, timeout=timeout, stdin=stdin, env=env).check()

    def data_disks(self) -> list[str]:
        """Guest device paths of the data disks, in the order of config.disks_gib."""
        return [f"/dev/vd{chr(ord('b') + index)}" for index in range(len(self.config.disks_gib))]

    def data_disk_sha256(self, device: str) -> str:
        """sha256 of a whole data disk (a data_disks() path), read from its image on the host once the
        guest has flushed its caches: sha256sum in the guest reads about 12 MiB/s under TCG, so a 1 GiB
        disk took 85 s there and takes about a second here."""
        index = self.data_disks().index(device)
        self.check(["sync"])
        self.check(["blockdev", "--flushbufs", device])
        with (self.workdir / f"data{index}.raw").open("rb") as image:
            return hashlib.file_digest(image, "sha256").hexdigest()

    def ssd_disks(self) -> list[str]:
        """Guest device paths of the SSD disks, in the order of config.ssd_disks_gib (one SCSI id each)."""
        return [f"/dev/sd{chr(ord('a') + index)}" for index in range(len(self.config.ssd_disks_gib))]

    def load_ssd_disks(self, timeout: float = 60.0) -> None:
        """Load the SCSI drivers (the guest has no udev to do it) and wait for every SSD disk's node."""
        if not self.config.ssd_disks_gib:
            return
        self.check(["modprobe", "-a", "virtio_scsi", "sd_mod"])
        deadline = time.monotonic() + timeout
        while self.run(["test", "-b", self.ssd_disks()[-1]]).rc != 0:
            if time.monotonic() > deadline:
                raise GuestError(f"{self.ssd_disks()} did not appear within {timeout:.0f}s of loading virtio_scsi")
            time.sleep(0.5)

    def backed_device(self, index: int) -> str:
        """Guest device path of VMConfig.backed_disks[index]."""
        if not 0 <= index < len(self.config.backed_disks):
            raise GuestError(f"this VM has {len(self.config.backed_disks)} backed disks, not {index + 1}")
        return f"/dev/vd{chr(ord('b') + len(self.config.disks_gib) + index)}"

    def files_device(self) -> str:
        """Guest device path of the read-only files disk (VMConfig.files_disk)."""
        if self.config.files_disk is None:
            raise GuestError("this VM was booted without a files disk")
        return f"/dev/vd{chr(ord('b') + len(self.config.disks_gib) + len(self.config.backed_disks))}"

    def site_device(self) -> str:
        """Guest device path of the read-only site disk (VMConfig.site_disk), after the files disk."""
        if self.config.site_disk is None:
            raise GuestError("this VM was booted without a site disk")
        index = len(self.config.disks_gib) + len(self.config.backed_disks) + (self.config.files_disk is not None)
        return f"/dev/vd{chr(ord('b') + index)}"

    def host_port(self, guest_port: int) -> int:
        return self.forwarded[guest_port]

    # -- internals -------------------------------------------------------------------------
    def _create_disks(self, image: NodeImage) -> None:
        overlay = self.workdir / "root.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.root), str(overlay)],
            check=True,
        )
        for index, size in enumerate(self.config.disks_gib):
            with (self.workdir / f"data{index}.raw").open("wb") as disk:
                disk.truncate(size * 1024**3)
        for index, size in enumerate(self.config.ssd_disks_gib):
            with (self.workdir / f"ssd{index}.raw").open("wb") as disk:
                disk.truncate(size * 1024**3)
        for index, backing in enumerate(self.config.backed_disks):
            overlay = self.workdir / f"backed{index}.qcow2"
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(backing), str(overlay)], check=True
            )

    def _netdev(self) -> str:
        rules = [f"hostfwd=tcp:127.0.0.1:{self.agent_port}-:{GUEST_AGENT_PORT}"]
        rules += [f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in self.forwarded.items()]
        for port in self.config.guest_forwards:
            rules.append(f"guestfwd=tcp:{HOST_ALIAS}:{port}-tcp:127.0.0.1:{port}")
        isolation = [] if self.config.host_loopback else ["restrict=on"]
        return ",".join(["user", "id=net0", *isolation, *rules])

    def _argv(self, accel: Accelerator) -> list[str]:
        assert self._image is not None
        argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
        argv += [*accel.qemu_args, "-m", str(self.config.memory_mib), "-smp", str(self.config.cpus)]
        argv += ["-kernel", str(self._image.kernel), "-initrd", str(self._image.initrd)]
        kernel_args = " ".join([KERNEL_ARGS, *accel.kernel_args])
        kernel_args += " localcsi.cgroup=v1" if self.config.cgroup_version == "v1" else ""
        argv += ["-append", kernel_args, "-serial", f"file:{self.workdir / 'console.log'}"]
        for drive in self._drives():
            argv += ["-drive", drive]
        argv += ["-netdev", self._netdev(), "-device", "virtio-net-pci,netdev=net0"]
        return argv + self._ssd_devices()

    def _ssd_devices(self) -> list[str]:
        """qemu arguments of the SSD disks: a virtio-scsi controller, and a scsi-hd per disk, one SCSI id
        each (the guest names them sda, sdb, ... in that order), reporting a rotation rate of 1."""
        if not self.config.ssd_disks_gib:
            return []
        argv = ["-device", "virtio-scsi-pci,id=scsi0"]
        for index in range(len(self.config.ssd_disks_gib)):
            drive = f"file={self.workdir / f'ssd{index}.raw'},if=none,id=ssd{index},format=raw,discard=unmap"
            disk = f"scsi-hd,drive=ssd{index},bus=scsi0.0,scsi-id={index},lun=0,rotation_rate=1"
            argv += ["-drive", drive, "-device", disk]
        return argv

    def _drives(self) -> list[str]:
        """qemu -drive values in guest order (vda, vdb, ...): root, data, backed, files, site."""
        disks = [(self.workdir / "root.qcow2", "qcow2")]
        disks += [(self.workdir / f"data{i}.raw", "raw") for i in range(len(self.config.disks_gib))]
        disks += [(self.workdir / f"backed{i}.qcow2", "qcow2") for i in range(len(self.config.backed_disks))]
        drives = [f"file={path},if=virtio,format={fmt},discard=unmap" for path, fmt in disks]
        for read_only in (self.config.files_disk, self.config.site_disk):
            if read_only is not None:
                drives.append(f"file={read_only},if=virtio,format=raw,readonly=on")
        return drives

    def _launch(self, accel: Accelerator) -> None:
        log = (self.workdir / "qemu.log").open("ab")
        self._proc = subprocess.Popen(self._argv(accel), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

    def _wait_for_agent(self, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        stalled = False
        while time.monotonic() < deadline:
            if not self.running:
                qemu_log = (self.workdir / "qemu.log").read_text(errors="replace")[-2000:]
                raise GuestError(f"qemu exited during boot.\nqemu: {qemu_log}\nconsole:\n{self.console()}")
            if self.guest.ping(timeout=2.0):
                return
            if not stalled and BOOT_STALL in self.console(tail=1 << 20):
                stalled = True
                deadline = min(deadline, time.monotonic() + STALL_GRACE)
            time.sleep(0.5)
        self._kill()
        waited = time.monotonic() - started
        if stalled:
            raise BootStalled(f"guest agent not up after {waited:.0f}s, RCU stalls on the console:\n{self.console()}")
        raise GuestError(f"guest agent not up after {timeout:.0f}s; console:\n{self.console()}")

    def _boot_probe(self, accel: Accelerator, timeout: float) -> bool:
        """Boot once with accel; True if the guest agent answered in time. Leaves it stopped."""
        self._launch(accel)
        try:
            self._wait_for_agent(timeout)
        except GuestError:
            return False
        self._power_off()
        return True

    def _power_off(self) -> None:
        if not self.running:
            return
        self.guest.poweroff()
        assert self._proc is not None
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=30)
