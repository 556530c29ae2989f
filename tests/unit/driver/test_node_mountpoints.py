"""The node service's MountPoint volumes: a bind mount of localcsi-volume/, and only that, on fakes."""

from __future__ import annotations

from typing import cast

import pytest
from node_fakes import DIRECTORY, NODE, TARGET, USAGE, FakeFilesystems, FakeLvm, block_cap, code_of, mount_cap

from localcsi.core.exclusive import MOUNTPOINT_GROUP, VOLUME_DIR
from localcsi.core.ids import LvRef
from localcsi.core.model import Volume
from localcsi.driver.mountpoints import LocalMountPoints
from localcsi.driver.node import ExpandRequest, PublishRequest
from localcsi.driver.node_mountpoints import NodeServiceWithMountPoints
from localcsi.fs.types import DeviceNumber, Mount

pytestmark = pytest.mark.unit

POINT = "/mnt/mp/a"
SOURCE = f"{POINT}/{VOLUME_DIR}"
REF = LvRef(NODE, MOUNTPOINT_GROUP, "csi-0123456789abcdef0123456789abcdef")
VOLUME_ID = str(REF)
DISK = DeviceNumber(254, 80)


class BindingFilesystems(FakeFilesystems):
    """Directory bind mounts, shown by findmnt as ``/dev/vdf[/localcsi-volume]``."""

    def bind_mount(self, source: str, target: str) -> None:
        self.changes.append(("bind", source, target))
        assert self.paths.get(target) == DIRECTORY
        root = source.removeprefix(POINT)
        self.mounts.setdefault(target, []).append(Mount(target, f"/dev/vdf[{root}]", "ext4", ("rw",), DISK))


class OnePoint:
    def volume_dir(self, ref: LvRef) -> tuple[str, Volume]:
        if ref != REF:
            raise AssertionError(ref)
        return SOURCE, cast(Volume, None)


def service() -> tuple[NodeServiceWithMountPoints, BindingFilesystems]:
    fs = BindingFilesystems()
    fs.mounts["/"] = [Mount("/", "/dev/vda1", "ext4", ("rw",), DeviceNumber(254, 1))]  # listed first, as findmnt does
    fs.mounts[POINT] = [Mount(POINT, "/dev/vdf", "ext4", ("rw",), DISK)]
    points = cast(LocalMountPoints, OnePoint())
    return NodeServiceWithMountPoints(NODE, fs, FakeLvm(), mount_points=points), fs


def test_publish_binds_the_volume_directory_and_a_retry_changes_nothing() -> None:
    node, fs = service()
    node.publish(PublishRequest(VOLUME_ID, TARGET, mount_cap()))
    node.publish(PublishRequest(VOLUME_ID, TARGET, mount_cap()))
    assert [c for c in fs.changes if c[0] == "bind"] == [("bind", SOURCE, TARGET)]
    stats = node.stats(VOLUME_ID, TARGET)
    assert stats.total_bytes == USAGE.total_bytes and stats.usage == USAGE
    assert code_of(node.expand, ExpandRequest(VOLUME_ID, TARGET)) == "INVALID_ARGUMENT"
    node.unpublish(VOLUME_ID, TARGET)
    assert not fs.mounts.get(TARGET) and TARGET not in fs.paths
    node.unpublish(VOLUME_ID, TARGET)  # repeated: nothing left


def test_block_access_and_someone_elses_mount_are_refused() -> None:
    node, fs = service()
    assert code_of(node.publish, PublishRequest(VOLUME_ID, "/t/block", block_cap())) == "FAILED_PRECONDITION"
    fs.paths[TARGET] = DIRECTORY
    fs.mounts[TARGET] = [Mount(TARGET, "/dev/vdz", "ext4", ("rw",), DeviceNumber(254, 99))]
    assert code_of(node.publish, PublishRequest(VOLUME_ID, TARGET, mount_cap())) == "ALREADY_EXISTS"
    assert code_of(node.unpublish, VOLUME_ID, TARGET) == "FAILED_PRECONDITION"
    assert fs.mounts[TARGET], "a mount that is not the volume's was left alone"


def test_read_only_publish_is_remounted_read_only() -> None:
    node, fs = service()
    node.publish(PublishRequest(VOLUME_ID, TARGET, mount_cap(), readonly=True))
    assert ("remount-ro", TARGET) in fs.changes


def test_lvm_ids_still_go_to_the_lvm_node_service() -> None:
    node, _ = service()
    assert code_of(node.publish, PublishRequest(f"{NODE}/localcsi-a/csi-1", TARGET, mount_cap())) == "NOT_FOUND"
