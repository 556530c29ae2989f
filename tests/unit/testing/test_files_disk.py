from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from localcsi.testing.files_disk import MIB, SLACK_BYTES, image_size, make_files_disk, make_tree_disk


def test_image_size_adds_a_fifth_and_slack_in_whole_mib(tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    payload.write_bytes(b"x" * (10 * MIB + 1))
    size = image_size({"payload": payload})
    assert size % MIB == 0
    assert size >= 10 * MIB + 1 + 2 * MIB + SLACK_BYTES


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "images/../../x"])
def test_entries_must_stay_inside_the_disk(tmp_path: Path, name: str) -> None:
    source = tmp_path / "s"
    source.write_text("s")
    with pytest.raises(ValueError, match="relative path inside the disk"):
        make_files_disk(tmp_path / "disk.img", {name: source}, tmp_path / "staging")


def test_the_disk_holds_each_file_at_its_name(tmp_path: Path) -> None:
    kubelet, archive = tmp_path / "kubelet", tmp_path / "a.tar"
    kubelet.write_bytes(b"binary")
    archive.write_bytes(b"archive" * 1000)
    image = make_files_disk(tmp_path / "disk.img", {"kubelet": kubelet, "images/00.tar": archive}, tmp_path / "st")
    listing = subprocess.run(["debugfs", "-R", "ls -p /images", str(image)], capture_output=True, text=True, check=True)
    assert "/00.tar/7000/" in listing.stdout
    dumped = tmp_path / "out"
    subprocess.run(["debugfs", "-R", f"dump /kubelet {dumped}", str(image)], capture_output=True, check=True)
    assert dumped.read_bytes() == b"binary"
    assert not (tmp_path / "st").exists()


def test_a_tree_disk_holds_the_tree_at_its_root(tmp_path: Path) -> None:
    tree = tmp_path / "site"
    (tree / "localcsi").mkdir(parents=True)
    (tree / "localcsi" / "__init__.py").write_text("x = 1\n")
    image = make_tree_disk(tmp_path / "site.img", tree, label="site")
    argv = ["debugfs", "-R", "ls -p /localcsi", str(image)]
    assert "/__init__.py/" in subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    label = ["blkid", "-o", "value", "-s", "LABEL", str(image)]
    assert subprocess.run(label, capture_output=True, text=True, check=True).stdout.strip() == "site"
    assert tree.is_dir(), "the tree itself is left alone"
