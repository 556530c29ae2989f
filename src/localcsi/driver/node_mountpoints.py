"""The node service with MountPoint volumes: a bind mount of the mount point's ``localcsi-volume/``.

LVM and Device volumes (LVs) go to ``NodeService`` unchanged; an id of a MountPoint volume
(``<node>/localcsi-mountpoint/<name>``) is published by bind-mounting its directory on the target,
unpublished by unmounting it, and its stats are the filesystem's. It never grows (the controller
refuses) and has no block mode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from localcsi.core.errors import AlreadyExists, FailedPrecondition, Internal, InvalidArgument, NotFound
from localcsi.core.exclusive import VOLUME_DIR, is_mountpoint_group
from localcsi.core.health import HEALTHY
from localcsi.core.ids import parse_volume_id
from localcsi.driver.mountpoints import LocalMountPoints
from localcsi.driver.node import MAX_STACKED_MOUNTS, ExpandRequest, NodeService, VolumeStats, _lookup_path
from localcsi.driver.publish_targets import make_read_only, remove_target
from localcsi.fs.mounts import WantedMount
from localcsi.fs.types import Mount, PathKind

log = logging.getLogger(__name__)


def _ours(mount: Mount) -> bool:
    return mount.source.endswith(f"[/{VOLUME_DIR}]")


class NodeServiceWithMountPoints(NodeService):
    def __init__(self, *args: Any, mount_points: LocalMountPoints, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mount_points = mount_points

    def _publish(self, volume_id: str, target: str, wanted: WantedMount, context: Mapping[str, str]) -> None:
        ref = parse_volume_id(volume_id)
        if not is_mountpoint_group(ref.vg):
            super()._publish(volume_id, target, wanted, context)
            return
        if wanted.block:
            raise FailedPrecondition(f"volume {volume_id} is a mount point: it serves filesystem access, not block")
        with self.locks.hold(volume_id, f"target:{target}"):
            source, _ = self.mount_points.volume_dir(ref)
            mounted = self.fs.find_mount(target)
            if mounted is not None:
                if _ours(mounted) and mounted.device == self._device(source) and mounted.read_only == wanted.readonly:
                    return
                raise AlreadyExists(f"{target} already has {mounted.source} mounted, unlike this request")
            info = self.fs.path_info(target)
            if info is None:
                self.fs.make_directory(target)
            elif info.kind is not PathKind.DIRECTORY:
                raise FailedPrecondition(f"{target} is a {info.kind}; a MountPoint volume needs a directory there")
            self.fs.bind_mount(source, target)
            if wanted.readonly:
                make_read_only(self.fs, target)
        log.info("published MountPoint volume %s (%s) at %s", volume_id, source, target)

    def _device(self, path: str) -> object:
        """The device of the filesystem ``path`` is on: the topmost of the longest mount points above it."""
        above = [m for m in self.fs.list_mounts() if path == m.target or path.startswith(m.target.rstrip("/") + "/")]
        longest = max((len(m.target) for m in above), default=0)
        nearest = [m for m in above if len(m.target) == longest]
        return nearest[-1].device if nearest else None

    def _unpublish(self, volume_id: str, target: str) -> None:
        ref = parse_volume_id(volume_id)
        if not is_mountpoint_group(ref.vg):
            super()._unpublish(volume_id, target)
            return
        with self.locks.hold(volume_id, f"target:{target}"):
            for _ in range(MAX_STACKED_MOUNTS):
                mounted = self.fs.find_mount(target)
                if mounted is None:
                    break
                if not _ours(mounted):
                    raise FailedPrecondition(f"{target} has {mounted.source} mounted, not volume {volume_id}")
                self.fs.unmount(target)
            else:
                raise Internal(f"{target} is still mounted after {MAX_STACKED_MOUNTS} unmounts")
            remove_target(self.fs, target)
        log.info("unpublished MountPoint volume %s from %s", volume_id, target)

    def stats(self, volume_id: str, volume_path: str) -> VolumeStats:
        ref = parse_volume_id(volume_id) if volume_id else None
        if ref is None or not is_mountpoint_group(ref.vg):
            return super().stats(volume_id, volume_path)
        path = _lookup_path(volume_path, "volume_path")
        self.mount_points.volume_dir(ref)  # NOT_FOUND when it does not exist
        mounted = self.fs.find_mount(path)
        if mounted is None or not _ours(mounted):
            raise NotFound(f"volume {volume_id} is not published at {path}")
        usage = self.fs.usage(path)
        return VolumeStats(usage.total_bytes, usage, HEALTHY)

    def expand(self, request: ExpandRequest) -> int:
        if request.volume_id and is_mountpoint_group(parse_volume_id(request.volume_id).vg):
            raise InvalidArgument(f"volume {request.volume_id} is a whole mount point: its size is fixed")
        return super().expand(request)
