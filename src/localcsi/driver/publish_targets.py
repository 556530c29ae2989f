"""A publish's target path: what is mounted there and whether it is the volume asked about; a filesystem
mounted on a directory (made only on a device with no signature at all) or a device node bound on a file;
and, at unpublish, the directory or empty file removed."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from localcsi.core.errors import AlreadyExists, FailedPrecondition, NotFound
from localcsi.core.ids import LvRef
from localcsi.core.model import LogicalVolume, Volume
from localcsi.core.params import FsType
from localcsi.core.sizes import FILESYSTEM_MINIMUM_BYTES, format_bytes
from localcsi.fs.mounts import WantedMount, mount_differences
from localcsi.fs.types import DeviceNumber, FilesystemOps, Mount, PathKind


@dataclass(frozen=True)
class Published:
    """What is mounted at a path, and whether it is the volume asked about."""

    mount: Mount
    block: bool
    ours: bool
    stale: bool = False  # a block node whose device no longer exists


def check_republish(volume: Volume, target: str, published: Published, wanted: WantedMount) -> None:
    """A second publish to the same target: OK if it asks for what is there, ALREADY_EXISTS if not."""
    if not published.ours:
        raise AlreadyExists(f"{target} already has {published.mount.source} mounted, not volume {volume.id}")
    differences = mount_differences(published.mount, published.block, wanted)
    if differences:
        raise AlreadyExists(
            f"volume {volume.id} is already published at {target} {' and '.join(differences)}, unlike this "
            "request: unpublish it first"
        )


def _device_number(lv: LogicalVolume) -> DeviceNumber | None:
    if lv.kernel_major is None or lv.kernel_minor is None:
        return None
    return DeviceNumber(lv.kernel_major, lv.kernel_minor)


def published_at(
    fs: FilesystemOps, lv: LogicalVolume | None, path: str, vanished: LvRef | None = None
) -> Published | None:
    """What is mounted at ``path``, if anything, and whether it is this LV.

    ``vanished``: the volume lvm2 no longer lists (its disk may be gone), recognised by its
    device-mapper name, so that its mount can still be cleaned up.
    """
    mount = fs.find_mount(path)
    if mount is None:
        return None
    device = _device_number(lv) if lv is not None else None
    info = fs.path_info(path)
    if info is not None and info.kind is PathKind.BLOCK_DEVICE and info.rdev is not None:
        ours = info.rdev == device
        # A bind-mounted node does not hold its LV open: the LV may have been deleted under it.
        stale = not ours and fs.path_info(f"/sys/dev/block/{info.rdev}") is None
        return Published(mount, block=True, ours=ours, stale=stale)
    ours = device is not None and mount.device == device
    if lv is None and vanished is not None:
        ours = mount.source == LogicalVolume(vanished.vg, vanished.lv, 0, "").mapper_path
    return Published(mount, block=False, ours=ours)


def published_here(fs: FilesystemOps, volume: Volume, path: str) -> Published:
    published = published_at(fs, volume.lv, path)
    if published is None or not published.ours:
        raise NotFound(f"volume {volume.id} is not published at {path}")
    return published


def publish_filesystem(fs: FilesystemOps, volume: Volume, target: str, fs_type: str, flags: tuple[str, ...]) -> None:
    info = fs.path_info(target)
    if info is not None and info.kind is not PathKind.DIRECTORY:
        raise FailedPrecondition(f"{target} is a {info.kind}; a filesystem volume needs a directory there")
    device = volume.lv.device_path
    mounted_type = _filesystem(fs, volume, device, fs_type)
    if info is None:
        fs.make_directory(target)
    fs.mount(device, target, mounted_type, flags)
    if volume.source is not None and "ro" not in flags:
        # A restore or clone made larger than its source holds the source's smaller filesystem, and
        # the kubelet calls no NodeExpandVolume for it: grow it to the device (a no-op when it fills it).
        fs.resize(mounted_type, device, target)


def _filesystem(fs: FilesystemOps, volume: Volume, device: str, wanted: str) -> str:
    """The filesystem to mount: the one on the device, or a new one if there is no signature at all."""
    signature = fs.probe(device)
    if signature is None:
        fs_type = wanted or volume.fs_type or FsType.EXT4
        minimum = FILESYSTEM_MINIMUM_BYTES.get(fs_type, 0)
        if volume.size_bytes < minimum:  # a volume created for ext4 or block, published asking for xfs
            raise FailedPrecondition(
                f"volume {volume.id} has {format_bytes(volume.size_bytes)}, less than the {format_bytes(minimum)} "
                f"an {fs_type} filesystem needs: publish it with ext4 (or no fs_type), or expand it first"
            )
        fs.make_filesystem(device, fs_type)
        return fs_type
    if not signature.is_filesystem or signature.type not in set(FsType):
        raise FailedPrecondition(
            f"volume {volume.id} ({device}) carries a {signature} signature, not an ext4 or xfs "
            f"filesystem; it is never formatted over. If its content is not needed, erase it with "
            f"`wipefs -a {device}` and retry"
        )
    if wanted and wanted != signature.type:
        raise FailedPrecondition(
            f"volume {volume.id} holds a {signature.type} filesystem, not the {wanted} asked for; "
            f"an existing filesystem is never reformatted: ask for {signature.type} or leave fs_type empty"
        )
    return signature.type


def publish_block(fs: FilesystemOps, volume: Volume, target: str) -> None:
    info = fs.path_info(target)
    if info is None:
        fs.make_directory(posixpath.dirname(target))
        fs.make_file(target)
    elif info.kind is not PathKind.FILE:
        raise FailedPrecondition(f"{target} is a {info.kind}; a block volume needs a file there")
    fs.bind_mount(volume.lv.device_path, target)


def make_read_only(fs: FilesystemOps, target: str) -> None:
    try:
        fs.remount_read_only(target)
    except Exception:
        fs.unmount(target)  # never leave a read-only publish writable
        raise


def remove_target(fs: FilesystemOps, target: str) -> None:
    info = fs.path_info(target)
    if info is None:
        return
    if info.kind is PathKind.DIRECTORY:
        fs.remove_directory(target)
    elif info.kind is PathKind.FILE and info.size_bytes == 0:
        fs.remove_file(target)
    else:
        raise FailedPrecondition(
            f"{target} is a {'non-empty file' if info.kind is PathKind.FILE else info.kind}, not what "
            "NodePublishVolume creates; it was left in place"
        )
