"""In-memory stand-ins for the fs and lvm adapters, for the node service's unit tests.

They keep just enough state (paths, a mount stack per target, signatures, LVs) for the service's
decisions to be observable, and record every change they are asked to make.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import CoreError, FailedPrecondition
from localcsi.core.model import LogicalVolume
from localcsi.core.tags import LvKind, LvMetadata, Source, encode_tags
from localcsi.driver.node import NodeService, PublishRequest
from localcsi.fs.types import DeviceNumber, FsUsage, Mount, PathInfo, PathKind, Signature

NODE = "node-1"
VG = "localcsi-vg"
MIB = 1024**2
GIB = 1024**3
DEVTMPFS = DeviceNumber(0, 5)
DIRECTORY = PathInfo(PathKind.DIRECTORY)
EMPTY_FILE = PathInfo(PathKind.FILE)
USAGE = FsUsage(
    total_bytes=GIB,
    available_bytes=GIB - 10 * MIB,
    used_bytes=10 * MIB,
    total_inodes=65536,
    available_inodes=65520,
    used_inodes=16,
)


def volume_lv(
    name: str = "csi-aaaa",
    *,
    minor: int = 1,
    active: bool = True,
    fs_type: str | None = None,
    access: str | None = None,
    pool: str = "",
    tagged: bool = True,
    size: int = GIB,
    source: Source | None = None,
) -> LogicalVolume:
    meta = LvMetadata(LvKind.VOLUME, f"pvc-{name}", size, source=source, fs_type=fs_type, access_type=access)
    tags = encode_tags(meta)
    return LogicalVolume(
        vg=VG,
        name=name,
        size_bytes=size,
        attr=("Vwi-a-tz--" if pool else "-wi-a-----") if active else "-wi-------",
        layout=("thin", "sparse") if pool else ("linear",),
        tags=tags if tagged else (),
        pool_lv=pool,
        kernel_major=253 if active else None,
        kernel_minor=minor if active else None,
    )


def volume_id(lv: LogicalVolume) -> str:
    return f"{NODE}/{lv.vg}/{lv.name}"


class FakeLvm:
    def __init__(self, *lvs: LogicalVolume, activation_works: bool = True) -> None:
        self.lvs = {(lv.vg, lv.name): lv for lv in lvs}
        self.activation_works = activation_works
        self.activated: list[str] = []
        self.lookups = 0

    def get_lv(self, vg: str, name: str) -> LogicalVolume | None:
        self.lookups += 1
        return self.lvs.get((vg, name))

    def activate(self, vg: str, name: str) -> None:
        self.activated.append(f"{vg}/{name}")
        if self.activation_works:
            lv = self.lvs[(vg, name)]
            self.lvs[(vg, name)] = replace(lv, attr=lv.attr[:4] + "a" + lv.attr[5:], kernel_major=253, kernel_minor=99)


class FakeFilesystems:
    def __init__(self, devices: dict[str, DeviceNumber] | None = None) -> None:
        self.paths: dict[str, PathInfo] = {}
        self.mounts: dict[str, list[Mount]] = {}
        self.bound: dict[str, DeviceNumber] = {}  # block targets: the node bind-mounted there
        self.signatures: dict[str, Signature] = {}
        self.devices = dict(devices or {})
        self.sizes: dict[str, int] = {}
        self.usages: dict[str, FsUsage] = {}
        self.changes: list[tuple[object, ...]] = []
        self.fail_remount = False

    def add_lv(self, lv: LogicalVolume, size: int | None = None) -> str:
        if lv.kernel_major is not None and lv.kernel_minor is not None:
            self.devices[lv.device_path] = DeviceNumber(lv.kernel_major, lv.kernel_minor)
        self.sizes[lv.device_path] = size if size is not None else lv.size_bytes
        return lv.device_path

    # -- queries --------------------------------------------------------------------------------

    def path_info(self, path: str, *, follow: bool = False) -> PathInfo | None:
        if path in self.bound and self.mounts.get(path):
            return PathInfo(PathKind.BLOCK_DEVICE, rdev=self.bound[path])
        return self.paths.get(path)

    def find_mount(self, mount_point: str) -> Mount | None:
        stack = self.mounts.get(mount_point)
        return stack[-1] if stack else None

    def list_mounts(self) -> list[Mount]:
        return [mount for stack in self.mounts.values() for mount in stack]

    def probe(self, device: str) -> Signature | None:
        return self.signatures.get(device)

    def usage(self, mount_point: str) -> FsUsage:
        return self.usages.get(mount_point, USAGE)

    def device_size(self, device: str) -> int:
        return self.sizes[device]

    # -- changes --------------------------------------------------------------------------------

    def make_filesystem(self, device: str, fs_type: str, options: Sequence[str] = ()) -> None:
        self.changes.append(("mkfs", fs_type, device))
        self.signatures[device] = Signature(fs_type, "filesystem")

    def mount(self, device: str, target: str, fs_type: str, options: Sequence[str] = ()) -> None:
        self.changes.append(("mount", device, target, fs_type, tuple(options)))
        assert self.paths.get(target) == DIRECTORY, f"mount on {target}, which is not a directory"
        read = "ro" if "ro" in options else "rw"
        flags = (read, *(option for option in options if option not in ("ro", "rw")))
        vg, name = device.split("/")[2:4]
        source = LogicalVolume(vg, name, 0, "").mapper_path  # findmnt names the device-mapper node
        self.mounts.setdefault(target, []).append(Mount(target, source, fs_type, flags, self.devices[device]))

    def bind_mount(self, source: str, target: str) -> None:
        self.changes.append(("bind", source, target))
        assert self.paths.get(target) is not None and self.paths[target].kind is PathKind.FILE
        self.bound[target] = self.devices[source]
        self.mounts.setdefault(target, []).append(Mount(target, "udev[/dm]", "devtmpfs", ("rw",), DEVTMPFS))

    def remount_read_only(self, target: str) -> None:
        self.changes.append(("remount-ro", target))
        if self.fail_remount:
            raise FailedPrecondition("remount failed")
        top = self.mounts[target][-1]
        self.mounts[target][-1] = replace(top, options=("ro", *top.options[1:]))

    def unmount(self, target: str) -> bool:
        self.changes.append(("umount", target))
        stack = self.mounts.get(target)
        if not stack:
            return False
        stack.pop()
        if not stack:
            self.bound.pop(target, None)
        return True

    def make_directory(self, path: str) -> None:
        self.changes.append(("mkdir", path))
        self.paths[path] = DIRECTORY

    def make_file(self, path: str) -> None:
        self.changes.append(("touch", path))
        self.paths[path] = EMPTY_FILE

    def remove_directory(self, path: str) -> None:
        self.changes.append(("rmdir", path))
        assert not self.mounts.get(path), f"rmdir of the mounted {path}"
        self.paths.pop(path, None)

    def remove_file(self, path: str) -> None:
        self.changes.append(("unlink", path))
        assert not self.mounts.get(path), f"unlink of the mounted {path}"
        self.paths.pop(path, None)

    def resize(self, fs_type: str, device: str, mount_point: str) -> None:
        self.changes.append(("resize", fs_type, device, mount_point))


TARGET = "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv1/mount"
BLOCK_TARGET = "/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pv1/p1"


def mount_cap(fs_type: str = "ext4", flags: tuple[str, ...] = (), mode: str = "SINGLE_NODE_WRITER") -> Capability:
    return Capability(mode, AccessType.MOUNT, fs_type, flags)


def block_cap(mode: str = "SINGLE_NODE_WRITER") -> Capability:
    return Capability(mode, AccessType.BLOCK)


class Node:
    """A NodeService over fakes holding the given LVs."""

    def __init__(self, *lvs: LogicalVolume, activation_works: bool = True) -> None:
        self.lvm = FakeLvm(*lvs, activation_works=activation_works)
        self.fs = FakeFilesystems()
        for lv in lvs:
            self.fs.add_lv(lv)
        self.service = NodeService(
            NODE, self.fs, self.lvm, max_volumes_per_node=50, vg_allowed=lambda vg: vg.startswith("localcsi-")
        )

    def publish(
        self, lv: LogicalVolume, target: str = TARGET, capability: Capability | None = None, readonly: bool = False
    ) -> None:
        request = PublishRequest(volume_id(lv), target, capability or mount_cap(), readonly)
        self.service.publish(request)


def code_of(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(CoreError) as raised:
        call(*args)
    return raised.value.code


LV = volume_lv()
GOOD_ID = volume_id(LV)
