"""Carrying out ``resourceToBeInited.mountpoints``: mkfs on a blank device, an fstab line, mount.

- A device with any signature is never formatted. The one exception is not an exception: a device
  holding the very filesystem (same UUID) that this agent's fstab line names for that path, which is
  what a reboot leaves; it is mounted again, never reformatted.
- Persistence is an ``/etc/fstab`` line (by UUID, ``nofail``, marked ``# localcsi.io``), written
  atomically (a new file renamed over the old one, other lines kept as they are): the host mounts it
  at boot like any other, with or without the agent; and the agent's next cycle mounts it if the host
  did not (a node without an fstab-reading init), with ``mount <path>``, i.e. through that line.
- Something else mounted at the path, or the device mounted elsewhere, is refused with the reason.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

from localcsi.core.errors import CoreError
from localcsi.core.mountpoint_init import MountPointToInit, our_fstab_entries, with_fstab_line
from localcsi.fs.adapter import Filesystems
from localcsi.fs.paths import validate_path
from localcsi.lvm.runner import CommandFailed, CommandRunner

log = logging.getLogger(__name__)

FSTAB = "/etc/fstab"
# In a container that runs mkfs and mount in the host's namespaces (--lvm-nsenter, with hostPID), the
# host's fstab is its PID 1's: the line must be where the host's `mount <path>` and boot read it.
HOST_FSTAB_FROM_CONTAINER = "/proc/1/root/etc/fstab"


@dataclass(frozen=True)
class MountPointResult:
    path: str
    ready: bool
    reason: str = ""  # why it was refused or failed


def uuid_argv(device: str) -> list[str]:
    return ["blkid", "-p", "-o", "value", "-s", "UUID", validate_path(device, "device")]


class MountPointInitializer:
    def __init__(self, runner: CommandRunner, fstab: str = FSTAB) -> None:
        self.runner = runner
        self.fs = Filesystems(runner)
        self.fstab = fstab

    def _lines(self) -> list[str]:
        try:
            with open(self.fstab, encoding="utf-8") as handle:
                return handle.read().splitlines()
        except FileNotFoundError:
            return []

    def _write(self, lines: list[str]) -> None:
        directory = os.path.dirname(self.fstab) or "."
        fd, temporary = tempfile.mkstemp(prefix=".fstab.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("".join(f"{line}\n" for line in lines))
                handle.flush()
                os.fsync(handle.fileno())
            if os.path.exists(self.fstab):
                os.chmod(temporary, os.stat(self.fstab).st_mode & 0o7777)
            else:
                os.chmod(temporary, 0o644)
            os.replace(temporary, self.fstab)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def _uuid(self, device: str) -> str:
        return self.runner.run(uuid_argv(device)).stdout.strip()

    def ensure(self, entry: MountPointToInit) -> MountPointResult:
        try:
            return self._ensure(entry)
        except CoreError as error:
            return MountPointResult(entry.path, False, error.message)

    def _ensure(self, entry: MountPointToInit) -> MountPointResult:
        device = os.path.realpath(entry.device)
        ours = our_fstab_entries(self._lines()).get(entry.path)
        mounted = self.fs.find_mount(entry.path)
        if mounted is not None:
            if os.path.realpath(mounted.source) != device:
                return MountPointResult(entry.path, False, f"{mounted.source} is mounted there, not {entry.device}")
            if ours is None:  # mounted by hand from the right device: make it persistent
                self._persist(entry, self._uuid(device))
            return MountPointResult(entry.path, True)
        signature = self.fs.probe(device)
        if signature is None:
            log.info("mount point %s: making %s on %s (blkid finds no signature on it)", entry.path,
                     entry.fs_type, entry.device)  # fmt: skip
            self.fs.make_filesystem(device, entry.fs_type)
            self._persist(entry, self._uuid(device))
        elif not (ours and signature.type == entry.fs_type and self._uuid(device) == ours):
            return MountPointResult(
                entry.path, False, f"{entry.device} carries {signature}; it is never formatted over (wipefs -a it "
                "yourself if its content is not needed)"
            )  # fmt: skip
        self.fs.make_directory(entry.path)
        try:
            self.runner.run(["mount", validate_path(entry.path, "mount point")])  # through our fstab line
        except CommandFailed as failure:
            return MountPointResult(entry.path, False, f"mount failed: {failure.stderr.strip() or failure.message}")
        log.info("mount point %s: %s mounted", entry.path, entry.device)
        return MountPointResult(entry.path, True)

    def _persist(self, entry: MountPointToInit, uuid: str) -> None:
        self._write(with_fstab_line(self._lines(), entry.path, entry.fstab_line(uuid)))
