"""Copy-on-write room for thick snapshots.

A thick snapshot whose COW space fills becomes invalid and its content is lost, so the default
(100%) reserves enough to hold every chunk of the origin plus lvm2's exception tables; lvm2 itself
trims a request above that to the exact maximum ("Reducing COW size ... down to maximum usable size").
A smaller ``snapshotSize`` trades that guarantee for space.
"""

from __future__ import annotations

from localcsi.core.params import SnapshotSize
from localcsi.core.sizes import round_up

# With the default 4 KiB chunks each 16-byte exception maps one chunk: tables take 1/256 of the
# origin, plus a header and a terminating metadata chunk. One extent covers those fixed chunks.
_EXCEPTION_TABLE_DIVISOR = 256


def full_cow_bytes(origin_bytes: int, extent_size: int) -> int:
    """COW space that can never overflow for an origin of ``origin_bytes``."""
    tables = -(-origin_bytes // _EXCEPTION_TABLE_DIVISOR)
    return round_up(origin_bytes + tables + extent_size, extent_size)


def cow_bytes(origin_bytes: int, extent_size: int, size: SnapshotSize) -> int:
    """COW space to allocate for a thick snapshot: at least one extent, at most the full size."""
    full = full_cow_bytes(origin_bytes, extent_size)
    if size.size_bytes is not None:
        wanted = size.size_bytes
    elif size.percent is not None and size.percent < 100:
        wanted = -(-origin_bytes * size.percent // 100)
    else:
        return full
    return min(full, max(extent_size, round_up(wanted, extent_size)))
