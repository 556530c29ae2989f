"""A read-only ext4 image that carries large files into the node VM.

The guest agent moves files as base64 inside one JSON line, which costs seconds per hundred MiB under
TCG in both directions; a disk made with `mke2fs -d` (no loop device, no root needed for the image
itself) is read by the guest's kernel at virtio speed. Attach it with VMConfig(files_disk=...), then
mount `vm.files_device()` read-only.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

MIB = 1024 * 1024
# ext4 metadata, the journal and per-file rounding on top of the files themselves.
SLACK_BYTES = 64 * MIB


def image_size(sources: Mapping[str, Path]) -> int:
    """Bytes for an image holding `sources`: their sizes plus a fifth, plus fixed slack, in whole MiB."""
    total = sum(path.stat().st_size for path in sources.values())
    size = total + total // 5 + SLACK_BYTES
    return -(-size // MIB) * MIB


def make_files_disk(image: Path, sources: Mapping[str, Path], staging: Path) -> Path:
    """Write `image`, an ext4 file system whose root holds each source at its relative name.

    Files are hard-linked into `staging` where they can be (same file system), copied otherwise."""
    for name in sources:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"files disk entry {name!r} must be a relative path inside the disk")
    shutil.rmtree(staging, ignore_errors=True)
    for name, source in sources.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.hardlink_to(source)
        except OSError:
            shutil.copy2(source, target)
    _mke2fs(staging, image, image_size(sources), "files")
    shutil.rmtree(staging, ignore_errors=True)
    return image


def make_tree_disk(image: Path, tree: Path, label: str) -> Path:
    """Write `image`, an ext4 file system holding the directory `tree` as its root."""
    sources = {str(path.relative_to(tree)): path for path in tree.rglob("*") if path.is_file()}
    _mke2fs(tree, image, image_size(sources), label)
    return image


def _mke2fs(root: Path, image: Path, size_bytes: int, label: str) -> None:
    argv = ["mke2fs", "-q", "-F", "-t", "ext4", "-L", label, "-d", str(root), str(image), f"{size_bytes // MIB}M"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mke2fs failed with exit code {result.returncode}: {result.stderr.strip()}")
