"""MountPoint volumes on this node: one whole existing mount point per volume, bind-mounted into pods.

Only mount points selected by the patterns (``--mount-point`` in standalone mode;
``listConfig.mountPoints`` for the agent in cluster mode) are looked at. A volume's owner record is
a marker file at the mount point's root (``.localcsi-owner``: the volume's LV-style tags, one a
line, written with O_EXCL so two creates cannot both take it); the pod gets the subdirectory
``localcsi-volume/``, so the marker is out of its view. Capacity is the filesystem's.

Delete removes ``localcsi-volume/`` with ``shutil.rmtree``'s fd-based walk, which never follows a
symbolic link (a link is removed, not what it points to) and is refused where Python cannot do that
walk; anything on another filesystem below it (a mount) stops the delete. The marker goes last, so a
crash midway leaves the mount point still taken and a retry finishes the job.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from localcsi.core.errors import FailedPrecondition, Internal, InvalidArgument, NotFound
from localcsi.core.exclusive import (
    EMPTY_ROOT_ENTRIES,
    MOUNTPOINT_GROUP,
    OWNER_MARKER,
    VOLUME_DIR,
    VOLUME_TYPE_KEY,
    MountPointInfo,
    choose_mount_point,
    is_mountpoint_group,
)
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.model import LogicalVolume, Volume, volume_from_lv
from localcsi.core.names import volume_lv_name
from localcsi.core.params import VolumeType
from localcsi.core.tags import OWNER_TAG, LvKind, LvMetadata, encode_tags
from localcsi.fs.types import FilesystemOps, Mount

log = logging.getLogger(__name__)

PATH_KEY = "mountPoint"
_ACTIVE_ATTR = "-wi-a-----"


@dataclass(frozen=True)
class MountPointPlan:
    node: str
    name: str  # the CSI name
    required_bytes: int
    limit_bytes: int
    fs_type: str | None


def _volume_dir_source(mount: Mount) -> bool:
    return mount.source.endswith(f"[/{VOLUME_DIR}]")


class LocalMountPoints:
    """The mount points of this node that MountPoint volumes may use."""

    def __init__(
        self, fs: FilesystemOps, node: str, patterns: Sequence[str], selects: Callable[[str], bool] | None = None
    ) -> None:
        self.fs = fs
        self.node = node
        self.patterns = tuple(patterns)
        self.selects = selects  # instead of the globs: the agent's listConfig.mountPoints

    def _chosen(self, path: str) -> bool:
        if self.selects is not None:
            return self.selects(path)
        return any(fnmatch.fnmatchcase(path, p) for p in self.patterns)

    # -- the inventory ----------------------------------------------------------------------------

    def _selected(self) -> list[Mount]:
        if not self.patterns and self.selects is None:
            return []
        seen: dict[str, Mount] = {}
        for mount in self.fs.list_mounts():
            if self._chosen(mount.target) and "[" not in mount.source:
                seen[mount.target] = mount  # the topmost mount at a path wins
        return list(seen.values())

    def mount_points(self) -> list[MountPointInfo]:
        return [self._info(mount.target) for mount in self._selected()]

    def _info(self, path: str) -> MountPointInfo:
        total = self.fs.usage(path).total_bytes
        try:
            tags = _read_marker(path)
        except OSError as exc:
            return MountPointInfo(path, total, problem=f"its owner marker cannot be read: {exc.strerror}")
        if tags is not None:
            lv = next((tag.split("=", 1)[1] for tag in tags if tag.startswith(f"{OWNER_TAG}/lv=")), "")
            return MountPointInfo(path, total, owner=lv or "an unknown volume")
        try:
            foreign = sorted(set(os.listdir(path)) - EMPTY_ROOT_ENTRIES)
        except OSError as exc:
            return MountPointInfo(path, total, problem=f"cannot be listed: {exc.strerror}")
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            return MountPointInfo(path, total, problem=f"not empty ({shown})")
        return MountPointInfo(path, total)

    def _lv(self, path: str, tags: Sequence[str]) -> LogicalVolume | None:
        name = next((tag.split("=", 1)[1] for tag in tags if tag.startswith(f"{OWNER_TAG}/lv=")), "")
        if not name:
            return None
        return LogicalVolume(MOUNTPOINT_GROUP, name, self.fs.usage(path).total_bytes, _ACTIVE_ATTR, tags=tuple(tags))

    def _held(self) -> list[tuple[str, Volume]]:
        """Each selected mount point that a volume holds, with the volume its marker describes."""
        held = []
        for mount in self._selected():
            try:
                tags = _read_marker(mount.target)
            except OSError:
                continue
            lv = self._lv(mount.target, tags) if tags else None
            volume = volume_from_lv(self.node, lv) if lv is not None else None
            if volume is not None:
                held.append((mount.target, volume))
        return held

    def find(self, lv_name: str) -> tuple[str, Volume] | None:
        """The mount point and volume whose marker names ``lv_name``."""
        return next(((path, volume) for path, volume in self._held() if volume.ref.lv == lv_name), None)

    def volumes(self) -> list[Volume]:
        return [volume for _, volume in self._held()]

    def capacity(self) -> tuple[int, int]:
        sizes = [point.total_bytes for point in self.mount_points() if point.free]
        return sum(sizes), max(sizes, default=0)

    # -- create and delete ------------------------------------------------------------------------

    def create(self, plan: MountPointPlan) -> Volume:
        lv_name = volume_lv_name(plan.name)
        found = self.find(lv_name)
        if found is not None:
            return found[1]
        point = choose_mount_point(self.mount_points(), plan.required_bytes, plan.limit_bytes)
        meta = LvMetadata(LvKind.VOLUME, plan.name, plan.required_bytes, None, plan.fs_type, "mount")
        make_ref(plan.node, MOUNTPOINT_GROUP, lv_name)  # checks the id's length before anything is written
        tags = (
            *encode_tags(meta),
            f"{OWNER_TAG}/lv={lv_name}",
            f"{OWNER_TAG}/{VOLUME_TYPE_KEY}={VolumeType.MOUNTPOINT}",
            f"{OWNER_TAG}/{PATH_KEY}={point.path}",
        )
        _write_marker(point.path, tags)
        os.makedirs(os.path.join(point.path, VOLUME_DIR), mode=0o777, exist_ok=True)
        os.chmod(os.path.join(point.path, VOLUME_DIR), 0o777)  # noqa: S103 - a pod's volume, as emptyDir
        log.info("MountPoint volume %s takes %s", plan.name, point.path)
        found = self.find(lv_name)
        if found is None:
            raise Internal(f"the owner marker written at {point.path} does not read back")
        return found[1]

    def delete(self, ref: LvRef) -> None:
        """Remove the volume's content (never leaving its filesystem), then its marker. Idempotent."""
        if not is_mountpoint_group(ref.vg):
            raise Internal(f"{ref} is not a MountPoint volume's id")
        found = self.find(ref.lv)
        if found is None:
            return
        path = found[0]
        volume_dir = os.path.join(path, VOLUME_DIR)
        in_use = [m.target for m in self.fs.list_mounts() if _volume_dir_source(m) and m.target != path]
        users = [target for target in in_use if self._same_filesystem(target, path)]
        if users:
            raise FailedPrecondition(f"MountPoint volume {ref} is still published at {', '.join(users)}; unpublish it")
        remove_tree(volume_dir)
        os.unlink(os.path.join(path, OWNER_MARKER))
        log.info("MountPoint volume %s: %s emptied and free again", ref, path)

    def _same_filesystem(self, target: str, path: str) -> bool:
        try:
            return os.stat(target).st_dev == os.stat(path).st_dev
        except OSError:
            return False

    # -- the node's side --------------------------------------------------------------------------

    def volume_dir(self, ref: LvRef) -> tuple[str, Volume]:
        if ref.node != self.node:
            raise NotFound(f"volume {ref} is on node {ref.node}, not on this node ({self.node})")
        found = self.find(ref.lv)
        if found is None:
            raise NotFound(f"volume {ref} does not exist")
        return os.path.join(found[0], VOLUME_DIR), found[1]


def _read_marker(path: str) -> list[str] | None:
    try:
        with open(os.path.join(path, OWNER_MARKER), encoding="utf-8") as marker:
            return [line.strip() for line in marker if line.strip()]
    except FileNotFoundError:
        return None


def _write_marker(path: str, tags: Sequence[str]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(os.path.join(path, OWNER_MARKER), flags, 0o600)
    except FileExistsError:
        raise FailedPrecondition(f"{path} was taken meanwhile; retry") from None
    with os.fdopen(fd, "w", encoding="utf-8") as marker:
        marker.write("".join(f"{tag}\n" for tag in tags))
        marker.flush()
        os.fsync(marker.fileno())


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything below it without following a symbolic link out of it, and
    without entering another filesystem mounted below it."""
    if not shutil.rmtree.avoids_symlink_attacks:
        raise InvalidArgument("this platform's shutil.rmtree can follow symbolic links: refusing to delete")
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)  # a link or file put in place of the volume's directory: removed, never followed
        return
    for root, dirs, _files, root_fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs:
            if os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_dev != top.st_dev:
                raise FailedPrecondition(f"{os.path.join(root, name)} is another filesystem; unmount it first")
    try:
        shutil.rmtree(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise Internal(f"removing {path} failed: {exc.strerror}") from None
