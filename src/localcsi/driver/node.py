"""The node service: publish, unpublish, expand and stats for this node's LVM volumes. No gRPC here.

Volumes are mounted straight at the target path (no staging): a filesystem volume is mounted on a
directory, a block volume's device node is bind-mounted on a file. mkfs runs only when blkid finds
no signature at all; an existing filesystem is used as it is and never reformatted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from localcsi import TOPOLOGY_KEY
from localcsi.core.capabilities import AccessType, Capability, unsupported_reason, validate_capabilities
from localcsi.core.ephemeral import is_ephemeral, is_kubelet_volume_id, parse_ephemeral
from localcsi.core.errors import FailedPrecondition, Internal, InvalidArgument, NotFound, OutOfRange
from localcsi.core.health import Condition, volume_condition
from localcsi.core.ids import LvRef, parse_volume_id
from localcsi.core.locks import OperationLocks
from localcsi.core.model import LogicalVolume, Volume, volume_from_lv
from localcsi.core.params import FsType
from localcsi.driver.ephemeral import EphemeralVolumes
from localcsi.driver.pod_limits import PodIoLimits
from localcsi.driver.publish_targets import (
    check_republish,
    make_read_only,
    publish_block,
    publish_filesystem,
    published_at,
    published_here,
    remove_target,
)
from localcsi.fs.mounts import WantedMount
from localcsi.fs.paths import validate_mount_flags, validate_path
from localcsi.fs.types import FilesystemOps, FsUsage

log = logging.getLogger(__name__)

READ_ONLY_MODES = frozenset({"SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY"})
MAX_STACKED_MOUNTS = 8


class NodeLvm(Protocol):
    def get_lv(self, vg: str, name: str) -> LogicalVolume | None: ...
    def activate(self, vg: str, name: str) -> None: ...


@dataclass(frozen=True)
class PublishRequest:
    volume_id: str
    target_path: str
    capability: Capability | None
    readonly: bool = False
    volume_context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpandRequest:
    volume_id: str
    volume_path: str
    required_bytes: int = 0


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    max_volumes_per_node: int
    topology: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeStats:
    total_bytes: int
    usage: FsUsage | None  # None for a block volume: it has bytes, not inodes or free space
    condition: Condition


def _required(value: str, what: str) -> str:
    if not value:
        raise InvalidArgument(f"{what} is required")
    return value


def _lookup_path(path: str, what: str) -> str:
    """A path that should hold a published volume: a relative one cannot, so the volume is not there."""
    _required(path, what)
    if not path.startswith("/"):
        raise NotFound(f"no volume is published at the relative path {path[:200]!r}: give an absolute path")
    return validate_path(path, what)


class NodeService:
    def __init__(
        self,
        node_id: str,
        fs: FilesystemOps,
        lvm: NodeLvm,
        *,
        max_volumes_per_node: int = 0,
        vg_allowed: Callable[[str], bool] = lambda _vg: True,
        io_limits: PodIoLimits | None = None,
        ephemeral: EphemeralVolumes | None = None,
    ) -> None:
        self.node_id = node_id
        self.fs = fs
        self.lvm = lvm
        self.max_volumes_per_node = max_volumes_per_node
        self.vg_allowed = vg_allowed
        self.io_limits = io_limits
        self.ephemeral = ephemeral
        self.locks = OperationLocks()

    def info(self) -> NodeInfo:
        return NodeInfo(self.node_id, self.max_volumes_per_node, {TOPOLOGY_KEY: self.node_id})

    # -- publish ----------------------------------------------------------------------------------

    def publish(self, request: PublishRequest) -> None:
        volume_id = _required(request.volume_id, "volume_id")
        target = validate_path(_required(request.target_path, "target_path"), "target_path")
        capability = request.capability
        if capability is None:
            raise InvalidArgument("volume_capability is required")
        validate_capabilities([capability])
        flags = validate_mount_flags(capability.mount_flags)
        reason = unsupported_reason([capability])
        if reason is not None:
            raise FailedPrecondition(reason)
        wanted = WantedMount(
            block=capability.access_type is AccessType.BLOCK,
            readonly=request.readonly or capability.access_mode in READ_ONLY_MODES or "ro" in flags,
            fs_type=capability.fs_type,
            flags=flags,
        )
        if not is_ephemeral(request.volume_context):
            self._publish(volume_id, target, wanted, request.volume_context)
            return
        ephemeral = self._ephemeral_service()
        inline = parse_ephemeral(volume_id, target, request.volume_context)
        if wanted.block:
            raise InvalidArgument("an inline ephemeral volume is a filesystem: the kubelet never asks for block")
        with self.locks.hold(volume_id):  # the kubelet's id; the volume's own is held by _publish
            volume = ephemeral.create(volume_id, inline, capability)
            self._publish(volume.id, target, wanted, request.volume_context)

    def _publish(self, volume_id: str, target: str, wanted: WantedMount, context: Mapping[str, str]) -> None:
        ref = parse_volume_id(volume_id)
        with self.locks.hold(volume_id, f"target:{target}"):
            volume = self._volume(ref, activate=True)
            self._check_access_type(volume, wanted.block)
            published = published_at(self.fs, volume.lv, target)
            if published is not None:
                check_republish(volume, target, published, wanted)
                return
            if wanted.block:
                publish_block(self.fs, volume, target)
            else:
                publish_filesystem(self.fs, volume, target, wanted.fs_type, wanted.flags)
            if wanted.readonly and "ro" not in wanted.flags:
                make_read_only(self.fs, target)
            if self.io_limits is not None:
                self.io_limits.published(volume.lv, target, context)
        log.info("published %s at %s as %s", volume_id, target, wanted)

    def _ephemeral_service(self) -> EphemeralVolumes:
        if self.ephemeral is None:
            raise InvalidArgument("this plugin does not serve inline ephemeral volumes")
        return self.ephemeral

    def _check_access_type(self, volume: Volume, block: bool) -> None:
        # A block volume's raw data has no signature: mounting it as a filesystem would format it.
        access = AccessType.BLOCK if block else AccessType.MOUNT
        if volume.access_type and volume.access_type != access:
            raise FailedPrecondition(
                f"volume {volume.id} was created for {volume.access_type} access and cannot be published "
                f"for {access} access"
            )

    # -- unpublish --------------------------------------------------------------------------------

    def unpublish(self, volume_id: str, target_path: str) -> None:
        _required(volume_id, "volume_id")
        target = validate_path(_required(target_path, "target_path"), "target_path")
        if self.ephemeral is not None and is_kubelet_volume_id(volume_id):
            self._unpublish_ephemeral(self.ephemeral, volume_id, target)
            return
        self._unpublish(volume_id, target)

    def _unpublish_ephemeral(self, ephemeral: EphemeralVolumes, kubelet_id: str, target: str) -> None:
        """Unmount an inline volume and remove it: it lives exactly as long as its pod's use of it."""
        with self.locks.hold(kubelet_id):
            volume = ephemeral.find(kubelet_id)
            if volume is None:  # removed by an earlier call: only the target may be left
                if self.fs.find_mount(target) is not None:
                    raise FailedPrecondition(f"{target} has something mounted that is not inline volume {kubelet_id}")
                remove_target(self.fs, target)
                return
            self._unpublish(volume.id, target)
            ephemeral.delete(volume)

    def _unpublish(self, volume_id: str, target: str) -> None:
        ref = parse_volume_id(volume_id)
        # The IO limits resync must not see the mount and re-apply a limit this call lifts.
        limits_held = self.io_limits.lock if self.io_limits is not None else contextlib.nullcontext()
        with self.locks.hold(volume_id, f"target:{target}"), limits_held:
            lv = self._existing_lv(ref)
            for _ in range(MAX_STACKED_MOUNTS):
                published = published_at(self.fs, lv, target, vanished=ref)
                if published is None:
                    break
                if not (published.ours or published.stale):
                    raise FailedPrecondition(
                        f"{target} has {published.mount.source} mounted, not volume {volume_id}; it was left mounted"
                    )
                self.fs.unmount(target)
            else:
                raise Internal(f"{target} is still mounted after {MAX_STACKED_MOUNTS} unmounts")
            if self.io_limits is not None:
                self.io_limits.unpublished(lv, target)
            remove_target(self.fs, target)
        log.info("unpublished %s from %s", volume_id, target)

    # -- expand and stats -------------------------------------------------------------------------

    def expand(self, request: ExpandRequest) -> int:
        """Grow the filesystem to fill its (already extended) LV; returns the volume's size in bytes."""
        volume_id = _required(request.volume_id, "volume_id")
        path = _lookup_path(request.volume_path, "volume_path")
        if request.required_bytes < 0:
            raise InvalidArgument(f"required_bytes must not be negative, got {request.required_bytes}")
        ref = parse_volume_id(volume_id)
        with self.locks.hold(volume_id):
            volume = self._volume(ref, activate=False)
            published = published_here(self.fs, volume, path)
            device = volume.lv.device_path
            size = self.fs.device_size(device)
            if request.required_bytes > size:
                raise OutOfRange(
                    f"volume {volume_id} is {size} bytes, less than the {request.required_bytes} asked for: "
                    "expand it with ControllerExpandVolume first"
                )
            if not published.block:
                fs_type = published.mount.fs_type
                if fs_type not in set(FsType):
                    raise FailedPrecondition(f"{path} holds a {fs_type} filesystem, which cannot be grown here")
                self.fs.resize(fs_type, device, path)
                log.info("grew the %s filesystem of %s to %d bytes", fs_type, volume_id, size)
        return size

    def stats(self, volume_id: str, volume_path: str) -> VolumeStats:
        _required(volume_id, "volume_id")
        path = _lookup_path(volume_path, "volume_path")
        if self.ephemeral is not None and is_kubelet_volume_id(volume_id):
            inline = self.ephemeral.find(volume_id)
            if inline is None:
                raise NotFound(f"inline volume {volume_id} does not exist")
            volume_id = inline.id
        volume = self._volume(parse_volume_id(volume_id), activate=False)
        published = published_here(self.fs, volume, path)
        lv = volume.lv
        pool = self.lvm.get_lv(lv.vg, lv.pool_lv) if lv.pool_lv else None
        condition = volume_condition(lv, pool)
        if published.block:
            return VolumeStats(self.fs.device_size(lv.device_path), None, condition)
        usage = self.fs.usage(path)
        return VolumeStats(usage.total_bytes, usage, condition)

    # -- lookups ----------------------------------------------------------------------------------

    def _existing_lv(self, ref: LvRef) -> LogicalVolume | None:
        if ref.node != self.node_id:
            raise NotFound(f"volume {ref} is on node {ref.node}, not on this node ({self.node_id})")
        if not self.vg_allowed(ref.vg):
            raise NotFound(f"volume {ref} is in volume group {ref.vg}, which this driver does not manage")
        return self.lvm.get_lv(ref.vg, ref.lv)

    def _volume(self, ref: LvRef, *, activate: bool) -> Volume:
        lv = self._existing_lv(ref)
        volume = volume_from_lv(ref.node, lv) if lv is not None else None
        if volume is None:
            raise NotFound(f"volume {ref} does not exist")
        if activate and not volume.lv.is_active:
            log.info("activating %s/%s", ref.vg, ref.lv)  # e.g. after a reboot
            self.lvm.activate(ref.vg, ref.lv)
            lv = self.lvm.get_lv(ref.vg, ref.lv)
            volume = volume_from_lv(ref.node, lv) if lv is not None else None
            if volume is None or not volume.lv.is_active:
                raise Internal(f"volume {ref} did not become active: check `lvs {ref.vg}/{ref.lv}`")
        return volume
