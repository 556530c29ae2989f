"""MountPoint volumes on plain directories: the pick, the owner marker, and a delete that never escapes.

The mount table and statfs are faked; the files are real (tmp_path), so the symlink escape is real.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import pytest

from localcsi.core.errors import FailedPrecondition, ResourceExhausted
from localcsi.core.exclusive import MOUNTPOINT_GROUP, OWNER_MARKER, VOLUME_DIR
from localcsi.core.ids import LvRef
from localcsi.core.names import volume_lv_name
from localcsi.driver.mountpoints import LocalMountPoints, MountPointPlan, remove_tree
from localcsi.fs.types import DeviceNumber, FilesystemOps, FsUsage, Mount

pytestmark = pytest.mark.unit

GIB = 1024**3


class FakeFs:
    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.binds: list[Mount] = []

    def list_mounts(self) -> list[Mount]:
        points = [Mount(path, "/dev/vdx", "ext4", (), DeviceNumber(254, 1)) for path in self.sizes]
        return [*points, *self.binds]

    def usage(self, path: str) -> FsUsage:
        return FsUsage(self.sizes[path], self.sizes[path], 0, 100, 100, 0)


def mount_points(tmp_path: Path, **sizes: int) -> tuple[LocalMountPoints, FakeFs]:
    paths = {}
    for name, size in sizes.items():
        (tmp_path / "mp" / name).mkdir(parents=True)
        paths[str(tmp_path / "mp" / name)] = size
    fs = FakeFs(paths)
    return LocalMountPoints(cast(FilesystemOps, fs), "node-1", [f"{tmp_path}/mp/*"]), fs


def plan(name: str, size: int = 1) -> MountPointPlan:
    return MountPointPlan("node-1", name, size, 0, "ext4")


def test_the_smallest_empty_mount_point_that_fits_is_taken_with_a_marker(tmp_path: Path) -> None:
    points, _ = mount_points(tmp_path, a=4 * GIB, b=GIB, c=2 * GIB)
    (tmp_path / "mp" / "b" / "somebodys").write_text("data")
    (tmp_path / "mp" / "c" / "lost+found").mkdir()  # a fresh filesystem's: still empty
    volume = points.create(plan("pvc-1", GIB))
    root = tmp_path / "mp" / "c"
    assert volume.size_bytes == 2 * GIB and volume.ref == LvRef("node-1", MOUNTPOINT_GROUP, volume_lv_name("pvc-1"))
    assert (root / OWNER_MARKER).is_file() and (root / VOLUME_DIR).is_dir()
    assert points.create(plan("pvc-1", GIB)) == volume, "a retry finds the first attempt's mount point"
    assert points.create(plan("pvc-2")).size_bytes == 4 * GIB
    with pytest.raises(ResourceExhausted, match="not empty"):
        points.create(plan("pvc-3"))
    assert points.capacity() == (0, 0)


def test_delete_removes_the_content_and_nothing_a_link_points_to(tmp_path: Path) -> None:
    points, _ = mount_points(tmp_path, a=GIB)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret").write_text("keep")
    (outside / "dir" / "inner").write_text("keep too")
    volume = points.create(plan("pvc-1"))
    content = tmp_path / "mp" / "a" / VOLUME_DIR
    (content / "nested" / "deeper").mkdir(parents=True)
    (content / "nested" / "deeper" / "data").write_bytes(b"x" * 4096)
    os.symlink(outside / "secret", content / "file-link")
    os.symlink(outside, content / "dir-link")
    os.symlink(outside / "dir", content / "nested" / "up-link")
    os.symlink("../../../outside", content / "relative-link")
    points.delete(volume.ref)
    assert sorted(os.listdir(tmp_path / "mp" / "a")) == []
    assert (outside / "secret").read_text() == "keep" and (outside / "dir" / "inner").read_text() == "keep too"
    assert points.capacity() == (GIB, GIB)
    points.delete(volume.ref)  # repeated: nothing to do


def test_delete_is_refused_while_the_volume_is_bound_somewhere(tmp_path: Path) -> None:
    points, fs = mount_points(tmp_path, a=GIB)
    volume = points.create(plan("pvc-1"))
    target = tmp_path / "pod"
    target.mkdir()
    fs.binds.append(Mount(str(target), f"/dev/vdx[/{VOLUME_DIR}]", "ext4", (), DeviceNumber(254, 1)))
    with pytest.raises(FailedPrecondition, match="still published"):
        points.delete(volume.ref)
    assert (tmp_path / "mp" / "a" / OWNER_MARKER).exists()


def test_remove_tree_removes_a_link_in_place_of_the_directory_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "file").write_text("keep")
    os.symlink(tmp_path / "target", tmp_path / "volume")
    remove_tree(str(tmp_path / "volume"))
    assert not (tmp_path / "volume").exists() and (tmp_path / "target" / "file").read_text() == "keep"
    remove_tree(str(tmp_path / "missing"))  # nothing there: nothing to do


def test_unselected_paths_are_never_looked_at(tmp_path: Path) -> None:
    fs = FakeFs({str(tmp_path / "elsewhere"): GIB})
    points = LocalMountPoints(cast(FilesystemOps, fs), "node-1", [f"{tmp_path}/mp/*"])
    assert points.mount_points() == []
    assert LocalMountPoints(cast(FilesystemOps, fs), "node-1", []).mount_points() == []


def test_volumes_lists_each_held_mount_point(tmp_path: Path) -> None:
    points, _ = mount_points(tmp_path, a=GIB, b=2 * GIB, c=GIB)
    (tmp_path / "mp" / "c" / "data").write_text("not a volume")
    made = [points.create(plan("pvc-1")), points.create(plan("pvc-2"))]
    assert sorted(v.id for v in points.volumes()) == sorted(v.id for v in made)
    assert {v.name for v in points.volumes()} == {"pvc-1", "pvc-2"}
