"""Comparing a mount that exists with the mount a request asks for. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from localcsi.fs.types import Mount

# Per-mount flags the kernel shows back in the mount table as given; others it rewrites or hides.
COMPARABLE_FLAGS = frozenset(
    {"nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "lazytime", "sync", "dirsync"}
)


@dataclass(frozen=True)
class WantedMount:
    block: bool
    readonly: bool
    fs_type: str  # "" for any
    flags: tuple[str, ...] = ()

    def __str__(self) -> str:
        kind = "block device" if self.block else f"filesystem {self.fs_type} {','.join(self.flags)}".rstrip()
        return f"{kind}{', read-only' if self.readonly else ''}"


def mount_differences(mount: Mount, block: bool, wanted: WantedMount) -> list[str]:
    """How ``mount`` (a block device bind if ``block``) differs from ``wanted``; empty if it matches."""
    differences: list[str] = []
    if block != wanted.block:
        differences.append(f"as {'a block device' if block else 'a filesystem'}")
    if mount.read_only != wanted.readonly:
        differences.append("read-only" if mount.read_only else "read-write")
    if not wanted.block and wanted.fs_type and mount.fs_type != wanted.fs_type:
        differences.append(f"with {mount.fs_type}")
    missing = sorted(flag for flag in wanted.flags if flag in COMPARABLE_FLAGS and flag not in mount.options)
    if missing:
        differences.append(f"without {','.join(missing)}")
    return differences
