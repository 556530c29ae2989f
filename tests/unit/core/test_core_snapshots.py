import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.params import SnapshotSize
from localcsi.core.sizes import GiB, MiB
from localcsi.core.snapshots import cow_bytes, full_cow_bytes

pytestmark = pytest.mark.unit

EXTENT = 4 * MiB


def lvm2_cow_max_bytes(origin: int, chunk: int = 4096) -> int:
    """lvm2's _cow_max_size(): header chunk + one chunk per origin chunk + exception-table chunks."""
    origin_chunks = -(-origin // chunk)
    per_table = chunk // 16
    tables = (origin_chunks + per_table) // per_table
    return (1 + origin_chunks + tables) * chunk


@given(st.integers(min_value=1, max_value=2**14).map(lambda n: n * EXTENT))
def test_full_size_holds_every_chunk_as_lvm2_computes_it(origin: int) -> None:
    full = full_cow_bytes(origin, EXTENT)
    assert full % EXTENT == 0
    assert full >= lvm2_cow_max_bytes(origin)
    assert full <= lvm2_cow_max_bytes(origin) + 2 * EXTENT  # and not wastefully more


def test_default_hundred_percent_is_the_full_size() -> None:
    assert cow_bytes(GiB, EXTENT, SnapshotSize(percent=100)) == full_cow_bytes(GiB, EXTENT)


def test_percentages_round_up_to_extents() -> None:
    assert cow_bytes(GiB, EXTENT, SnapshotSize(percent=25)) == 256 * MiB
    assert cow_bytes(10 * MiB, EXTENT, SnapshotSize(percent=50)) == 8 * MiB


def test_at_least_one_extent() -> None:
    assert cow_bytes(GiB, EXTENT, SnapshotSize(percent=1)) == 12 * MiB
    assert cow_bytes(4 * MiB, EXTENT, SnapshotSize(percent=1)) == EXTENT
    assert cow_bytes(GiB, EXTENT, SnapshotSize(size_bytes=1)) == EXTENT


def test_fixed_sizes_are_capped_at_the_full_size() -> None:
    assert cow_bytes(GiB, EXTENT, SnapshotSize(size_bytes=100 * GiB)) == full_cow_bytes(GiB, EXTENT)
    assert cow_bytes(GiB, EXTENT, SnapshotSize(size_bytes=100 * MiB)) == 100 * MiB
