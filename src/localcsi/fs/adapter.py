"""The filesystem adapter: typed methods over blkid, mkfs, mount, findmnt, stat, resize and blockdev."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from localcsi.core.errors import FailedPrecondition
from localcsi.fs import commands
from localcsi.fs.parse import (
    parse_blkid_export,
    parse_findmnt,
    parse_findmnt_all,
    parse_size,
    parse_stat,
    parse_statfs,
)
from localcsi.fs.types import FsUsage, Mount, PathInfo, PathKind, Signature
from localcsi.lvm.runner import CommandFailed, CommandRunner

log = logging.getLogger(__name__)

# blkid(8) exit statuses with -p.
BLKID_NOTHING_FOUND = 2
BLKID_AMBIVALENT = 8
FINDMNT_NOT_FOUND = 1
# mkfs and resize are proportional to the device: give them longer than the runner's default.
LONG_TIMEOUT = 1800.0
_MISSING = "No such file or directory"


class Filesystems:
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def _run(self, argv: Sequence[str], timeout: float | None = None) -> str:
        return self.runner.run(argv, timeout=timeout).stdout

    # -- queries --------------------------------------------------------------------------------

    def path_info(self, path: str, *, follow: bool = False) -> PathInfo | None:
        """What is at ``path`` (None when nothing is); ``follow`` resolves a symlink first."""
        try:
            return parse_stat(self._run(commands.stat_argv(path, follow=follow)))
        except CommandFailed as failure:
            if _MISSING in failure.stderr:
                return None
            raise

    def find_mount(self, mount_point: str) -> Mount | None:
        """The topmost mount at exactly ``mount_point``; None when it is not a mount point."""
        try:
            return parse_findmnt(self._run(commands.findmnt_argv(mount_point)))
        except CommandFailed as failure:
            if failure.returncode == FINDMNT_NOT_FOUND:
                return None
            raise

    def list_mounts(self) -> list[Mount]:
        """Every mount in the mount namespace lvm2 and mount run in, in mount order."""
        return parse_findmnt_all(self._run(commands.all_mounts_argv()))

    def probe(self, device: str) -> Signature | None:
        """Any signature blkid finds on ``device``: a filesystem, a partition table, swap, an LVM PV..."""
        info = self.path_info(device, follow=True)
        if info is None or info.kind is not PathKind.BLOCK_DEVICE:
            # blkid exits 2 for a missing device as for an empty one: never let that read as "empty".
            raise FailedPrecondition(f"{device} is not a block device ({info.kind if info else 'missing'})")
        try:
            return parse_blkid_export(self._run(commands.blkid_argv(device)))
        except CommandFailed as failure:
            if failure.returncode == BLKID_NOTHING_FOUND and not failure.stderr.strip():
                return None
            if failure.returncode == BLKID_AMBIVALENT:
                return Signature("ambivalent", "several signatures")
            raise

    def usage(self, mount_point: str) -> FsUsage:
        return parse_statfs(self._run(commands.statfs_argv(mount_point)))

    def device_size(self, device: str) -> int:
        return parse_size(self._run(commands.device_size_argv(device)))

    # -- changes --------------------------------------------------------------------------------

    def make_filesystem(self, device: str, fs_type: str, options: Sequence[str] = ()) -> None:
        """mkfs. Callers probe first: this must only ever run on a device without any signature."""
        log.info("running mkfs.%s on %s: blkid found no signature on it", fs_type, device)
        self._run(commands.mkfs_argv(fs_type, device, options), timeout=LONG_TIMEOUT)

    def mount(self, device: str, target: str, fs_type: str, options: Sequence[str] = ()) -> None:
        self._run(commands.mount_argv(device, target, fs_type, options))

    def bind_mount(self, source: str, target: str) -> None:
        self._run(commands.bind_mount_argv(source, target))

    def remount_read_only(self, target: str) -> None:
        self._run(commands.remount_read_only_argv(target))

    def unmount(self, target: str) -> bool:
        """Unmount the topmost mount at ``target``; False when nothing was mounted there."""
        try:
            self._run(commands.umount_argv(target))
        except CommandFailed as failure:
            if "not mounted" in failure.stderr or _MISSING in failure.stderr:
                return False
            if "target is busy" in failure.stderr:
                raise FailedPrecondition(
                    f"{target} is busy: a process still uses it; stop it and retry ({failure.message})"
                ) from failure
            raise
        return True

    def make_directory(self, path: str) -> None:
        self._run(commands.mkdir_argv(path))

    def make_file(self, path: str) -> None:
        self._run(commands.touch_argv(path))

    def remove_directory(self, path: str) -> None:
        """rmdir: refuses a non-empty directory, so data is never deleted."""
        try:
            self._run(commands.rmdir_argv(path))
        except CommandFailed as failure:
            if _MISSING in failure.stderr:
                return
            if "Directory not empty" in failure.stderr:
                raise FailedPrecondition(
                    f"{path} is not empty after unmounting; it was not removed: check what wrote there"
                ) from failure
            raise

    def remove_file(self, path: str) -> None:
        try:
            self._run(commands.unlink_argv(path))
        except CommandFailed as failure:
            if _MISSING not in failure.stderr:
                raise

    def resize(self, fs_type: str, device: str, mount_point: str) -> None:
        """Grow a mounted filesystem to fill its device (online)."""
        log.info("growing the %s filesystem on %s mounted at %s", fs_type, device, mount_point)
        self._run(commands.resize_argv(fs_type, device, mount_point), timeout=LONG_TIMEOUT)
