"""Volume and snapshot ids: ``<node>/<vg>/<lv>``.

The node part lets cluster mode route a request to the node that holds the LV without asking anyone;
the VG and LV parts locate it there. The LV name's prefix tells volumes (``csi-``) from snapshots
(``snap-``). Ids are validated on the way in, so a parsed id is safe to put on a command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from localcsi.core.errors import FailedPrecondition, InvalidArgument, NotFound
from localcsi.core.names import (
    SNAPSHOT_LV_PREFIX,
    VOLUME_LV_PREFIX,
    validate_lv_name,
    validate_node_id,
    validate_vg_name,
)

# The CSI spec's general limit for string fields.
MAX_ID_BYTES = 128


@dataclass(frozen=True, order=True)
class LvRef:
    node: str
    vg: str
    lv: str

    def __str__(self) -> str:
        return f"{self.node}/{self.vg}/{self.lv}"

    @property
    def is_volume(self) -> bool:
        return self.lv.startswith(VOLUME_LV_PREFIX)

    @property
    def is_snapshot(self) -> bool:
        return self.lv.startswith(SNAPSHOT_LV_PREFIX)


def make_ref(node: str, vg: str, lv: str) -> LvRef:
    """Build the id of an LV this driver is about to create; fails before anything is created."""
    validate_node_id(node)
    validate_vg_name(vg)
    validate_lv_name(lv)
    ref = LvRef(node, vg, lv)
    if len(str(ref).encode()) > MAX_ID_BYTES:
        raise FailedPrecondition(
            f"the id {ref} would exceed the CSI limit of {MAX_ID_BYTES} bytes: use a shorter "
            "node id or volume group name"
        )
    return ref


def _parse(text: str, prefix: str, what: str) -> LvRef:
    if not text:
        raise InvalidArgument(f"{what} id is required")
    parts = text.split("/")
    unknown = NotFound(f"{what} {text!r} does not exist: it is not an id this driver issued")
    if len(parts) != 3 or not parts[2].startswith(prefix):
        raise unknown
    try:
        validate_node_id(parts[0])
        validate_vg_name(parts[1])
        validate_lv_name(parts[2])
    except InvalidArgument:
        raise unknown from None
    return LvRef(parts[0], parts[1], parts[2])


def parse_volume_id(text: str) -> LvRef:
    """Parse a volume id. Empty: INVALID_ARGUMENT; malformed: a volume that does not exist (NOT_FOUND)."""
    return _parse(text, VOLUME_LV_PREFIX, "volume")


def parse_snapshot_id(text: str) -> LvRef:
    """Parse a snapshot id. Empty: INVALID_ARGUMENT; malformed: a snapshot that does not exist (NOT_FOUND)."""
    return _parse(text, SNAPSHOT_LV_PREFIX, "snapshot")
