"""Names: CSI names to LV names, and lvm2's naming rules checked before anything reaches a command line."""

from __future__ import annotations

import hashlib
import re

from localcsi.core.errors import InvalidArgument

VOLUME_LV_PREFIX = "csi-"
SNAPSHOT_LV_PREFIX = "snap-"
# 32 hex digits = 128 bits of sha256: collisions are out of reach, and the name stays short.
_HASH_HEX_DIGITS = 32
MAX_CSI_NAME_CHARS = 128

# lvm2 lib/misc/lvm-string.c: _validate_name() and apply_lvname_restrictions().
_LVM_NAME = re.compile(r"[A-Za-z0-9+_.-]+")
MAX_LVM_NAME_LENGTH = 127
_LV_RESERVED_PREFIXES = ("pvmove", "snapshot")
_LV_RESERVED_SUBSTRINGS = (
    "_cdata",
    "_cmeta",
    "_corig",
    "_cpool",
    "_cvol",
    "_wcorig",
    "_mimage",
    "_mlog",
    "_rimage",
    "_rmeta",
    "_tdata",
    "_tmeta",
    "_vdata",
    "_imeta",
    "_iorig",
    "_pmspare",
    "_vorigin",
)
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NODE_ID_LENGTH = 253  # a DNS subdomain, like a Kubernetes node name


def validate_csi_name(name: str, *, what: str = "name") -> str:
    """A CSI volume or snapshot name: required, at most 128 characters, valid UTF-8."""
    if not name:
        raise InvalidArgument(f"{what} is required")
    if len(name) > MAX_CSI_NAME_CHARS:
        raise InvalidArgument(f"{what} is {len(name)} characters long; at most {MAX_CSI_NAME_CHARS} allowed")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{what} is not valid UTF-8: {exc.reason}") from None
    return name


def _hashed(prefix: str, csi_name: str, what: str) -> str:
    validate_csi_name(csi_name, what=what)
    digest = hashlib.sha256(csi_name.encode("utf-8")).hexdigest()
    return prefix + digest[:_HASH_HEX_DIGITS]


def volume_lv_name(csi_name: str) -> str:
    """The LV name for a CSI volume name: ``csi-`` + 32 hex digits of sha256(name).

    Deterministic, so a retried CreateVolume finds the LV its crashed predecessor made.
    """
    return _hashed(VOLUME_LV_PREFIX, csi_name, "volume name")


def snapshot_lv_name(csi_name: str) -> str:
    """The LV name for a CSI snapshot name: ``snap-`` + 32 hex digits of sha256(name)."""
    return _hashed(SNAPSHOT_LV_PREFIX, csi_name, "snapshot name")


def _check_lvm_name(name: str, what: str) -> None:
    rules = "use 1-127 characters from [A-Za-z0-9+_.-], not starting with '-', and not '.' or '..'"
    if not name:
        raise InvalidArgument(f"{what} is empty; {rules}")
    if len(name) > MAX_LVM_NAME_LENGTH:
        raise InvalidArgument(f"{what} {name[:40]!r}... is {len(name)} characters long; {rules}")
    if not _LVM_NAME.fullmatch(name) or not name.isascii():
        raise InvalidArgument(f"{what} {name!r} has characters lvm2 does not allow; {rules}")
    if name.startswith("-"):
        raise InvalidArgument(f"{what} {name!r} starts with '-'; {rules}")
    if name in (".", ".."):
        raise InvalidArgument(f"{what} {name!r} is reserved; {rules}")


def validate_vg_name(name: str) -> str:
    _check_lvm_name(name, "volume group name")
    return name


def validate_lv_name(name: str, *, what: str = "logical volume name") -> str:
    _check_lvm_name(name, what)
    for prefix in _LV_RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise InvalidArgument(f"{what} {name!r}: lvm2 reserves names starting with {prefix!r}")
    for part in _LV_RESERVED_SUBSTRINGS:
        if part in name:
            raise InvalidArgument(f"{what} {name!r}: lvm2 reserves names containing {part!r}")
    return name


def validate_thin_pool_name(name: str) -> str:
    return validate_lv_name(name, what="thin pool name")


def validate_node_id(node_id: str) -> str:
    """A node id that can be part of a volume id: a Kubernetes node name or a host name."""
    if not node_id or len(node_id) > MAX_NODE_ID_LENGTH or not _NODE_ID.fullmatch(node_id):
        raise InvalidArgument(
            f"node id {node_id!r} is not usable: use 1-{MAX_NODE_ID_LENGTH} characters from "
            "[A-Za-z0-9._-] starting with a letter or digit"
        )
    return node_id
