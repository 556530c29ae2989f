"""``spec.resourceToBeInited.mountpoints``: filesystems the agent makes and mounts persistently.

Pure: the entries parsed from the spec, and the agent's own /etc/fstab lines (marked with a
trailing ``# localcsi.io`` comment, keyed by the mount point, naming the filesystem by UUID so that
a kernel rename after a reboot mounts the same filesystem). ``agent/mountpoint_init.py`` acts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FSTAB_MARK = "# localcsi.io"
_FS_TYPES = ("ext4", "xfs")
_PATH = re.compile(r"/[A-Za-z0-9._+:@=,/-]*")
_DEVICE = re.compile(r"/dev/[A-Za-z0-9._+:@=,/-]+")
_OPTION = re.compile(r"[A-Za-z0-9._+:@=/-]+")
_UUID = re.compile(r"[A-Fa-f0-9-]{8,64}")


@dataclass(frozen=True)
class MountPointToInit:
    path: str
    device: str
    fs_type: str = "ext4"
    options: tuple[str, ...] = ()

    def fstab_line(self, uuid: str) -> str:
        """The persistent mount: by UUID, ``nofail`` so that a missing disk never stops a boot."""
        if not _UUID.fullmatch(uuid):
            raise ValueError(f"{uuid!r} is not a filesystem UUID")
        options = ",".join((*self.options, "nofail")) if "nofail" not in self.options else ",".join(self.options)
        return f"UUID={uuid} {self.path} {self.fs_type} {options} 0 2 {FSTAB_MARK}"


def _safe_path(path: str) -> bool:
    parts = path.split("/")
    return bool(_PATH.fullmatch(path)) and path != "/" and "." not in parts and ".." not in parts


def parse_mount_points_to_init(spec: Mapping[str, Any]) -> tuple[list[MountPointToInit], list[str]]:
    """The entries of ``resourceToBeInited.mountpoints``, and the problems of those left out."""
    to_init = spec.get("resourceToBeInited")
    items = to_init.get("mountpoints") if isinstance(to_init, Mapping) else None
    entries: list[MountPointToInit] = []
    problems: list[str] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        where = f"spec.resourceToBeInited.mountpoints[{index}]"
        entry = item if isinstance(item, Mapping) else {}
        path, device = entry.get("path"), entry.get("device")
        fs_type = entry.get("fsType") or "ext4"
        options = entry.get("options") or []
        if not isinstance(path, str) or not _safe_path(path):
            problems.append(f"{where}.path must be an absolute path other than / without . or .. segments")
        elif not isinstance(device, str) or not _DEVICE.fullmatch(device) or "/../" in device:
            problems.append(f"{where}.device must be a device path under /dev/")
        elif fs_type not in _FS_TYPES:
            problems.append(f"{where}.fsType must be one of {', '.join(_FS_TYPES)}")
        elif not isinstance(options, list) or not all(isinstance(o, str) and _OPTION.fullmatch(o) for o in options):
            problems.append(f"{where}.options must be mount options, one per entry, without commas or spaces")
        else:
            entries.append(MountPointToInit(path, device, str(fs_type), tuple(options)))
    return entries, problems


def our_fstab_entries(lines: Sequence[str]) -> dict[str, str]:
    """Mount point -> the UUID of each fstab line this agent wrote."""
    entries: dict[str, str] = {}
    for line in lines:
        fields = line.split()
        if line.rstrip().endswith(FSTAB_MARK) and len(fields) >= 2 and fields[0].startswith("UUID="):
            entries[fields[1]] = fields[0].removeprefix("UUID=")
    return entries


def with_fstab_line(lines: Sequence[str], path: str, line: str) -> list[str]:
    """``lines`` with our line for ``path`` replaced by (or, if absent, followed by) ``line``."""
    kept = [
        existing
        for existing in lines
        if not (existing.rstrip().endswith(FSTAB_MARK) and existing.split()[1:2] == [path])
    ]
    return [*kept, line]
