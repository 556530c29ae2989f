"""Checks on paths and mount flags from CSI requests, before anything reaches a command line."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from localcsi.core.errors import InvalidArgument

MAX_PATH_BYTES = 4096  # PATH_MAX
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MOUNT_OPTION = re.compile(r'[A-Za-z0-9_.:=/+@%"-]+')
# Options that would change what mount does rather than how the filesystem behaves.
_REFUSED_OPTIONS = frozenset(
    {"bind", "rbind", "remount", "move", "loop", "offset", "sizelimit", "encryption", "helper"}
)
_REFUSED_PREFIXES = ("make-", "x-", "X-")


def validate_path(path: str, what: str) -> str:
    """An absolute, normalised path without control characters (so no NUL) and no ``..``.

    Validated paths begin with ``/``, so no command can mistake one for an option.
    """
    if not path:
        raise InvalidArgument(f"{what} is required")
    shown = path[:200]
    if _CONTROL.search(path):
        raise InvalidArgument(f"{what} {shown!r} contains control characters")
    if len(path.encode("utf-8", "replace")) > MAX_PATH_BYTES:
        raise InvalidArgument(f"{what} is longer than {MAX_PATH_BYTES} bytes")
    if not path.startswith("/"):
        raise InvalidArgument(f"{what} {shown!r} must be an absolute path")
    if ".." in path.split("/"):
        raise InvalidArgument(f"{what} {shown!r} must not contain '..'")
    if path == "/" or posixpath.normpath(path) != path.rstrip("/"):
        raise InvalidArgument(f"{what} {shown!r} must be a normalised path below /, like /var/lib/x")
    return path.rstrip("/")


def validate_mount_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """The capability's mount_flags as a flat list of mount options (items may hold commas)."""
    options: list[str] = []
    for flag in flags:
        for option in flag.split(","):
            if not option:
                raise InvalidArgument(f"mount flag {flag!r} has an empty option")
            if not _MOUNT_OPTION.fullmatch(option):
                raise InvalidArgument(f'mount option {option[:100]!r} has characters outside [A-Za-z0-9_.:=/+@%"-]')
            key = option.partition("=")[0]
            if key in _REFUSED_OPTIONS or key.startswith(_REFUSED_PREFIXES):
                raise InvalidArgument(
                    f"mount option {option!r} is not allowed: it changes how the volume is mounted, "
                    "not how its filesystem behaves"
                )
            options.append(option)
    return tuple(options)
