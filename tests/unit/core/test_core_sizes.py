import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.errors import InvalidArgument, OutOfRange
from localcsi.core.sizes import (
    MAX_BYTES,
    GiB,
    KiB,
    MiB,
    capacity_satisfied,
    filesystem_floor,
    format_bytes,
    parse_quantity,
    resolve_capacity,
    resolve_capacity_from_source,
    resolve_expansion,
    round_down,
    round_up,
)

pytestmark = pytest.mark.unit

EXTENT = 4 * MiB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1Mi", MiB),
        ("1G", 10**9),
        ("1048576", 1048576),
        ("1.5Gi", 1610612736),
        ("0", 0),
        ("+1Ki", 1024),
        (".5Ki", 512),
        ("1.", 1),
        ("1k", 1000),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1E", 10**18),
        ("500m", 1),  # half a byte rounds up to a byte
        ("1500m", 2),
        ("7Ei", 7 * 2**60),
    ],
)
def test_parse_quantity_accepts_kubernetes_forms(text: str, expected: int) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "-1Gi",
        " 1Gi",
        "1Gi ",
        "1 Gi",
        "1GB",
        "1gi",
        "abc",
        "1e",
        "1Ki1",
        "Gi",
        "1..2",
        "0x10",
        "\uff11",
    ],
)
def test_parse_quantity_rejects_garbage_and_negatives(text: str) -> None:
    with pytest.raises(InvalidArgument, match="bps"):
        parse_quantity(text, key="bps")


@pytest.mark.parametrize("text", ["8Ei", "9223372036854775808", "1e19", "1e999", "1" * 70])
def test_parse_quantity_rejects_overflow(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_quantity(text)


def test_parse_quantity_accepts_the_int64_maximum() -> None:
    assert parse_quantity(str(MAX_BYTES)) == MAX_BYTES


@given(st.integers(min_value=0, max_value=MAX_BYTES))
def test_plain_integers_parse_to_themselves(n: int) -> None:
    assert parse_quantity(str(n)) == n


@given(st.integers(min_value=0, max_value=2**40), st.sampled_from(["Ki", "Mi", "Gi", "Ti"]))
def test_binary_suffixes_multiply_by_powers_of_1024(n: int, suffix: str) -> None:
    factor = {"Ki": KiB, "Mi": MiB, "Gi": GiB, "Ti": 1024 * GiB}[suffix]
    if n * factor > MAX_BYTES:
        with pytest.raises(InvalidArgument):
            parse_quantity(f"{n}{suffix}")
    else:
        assert parse_quantity(f"{n}{suffix}") == n * factor


@given(st.integers(min_value=0, max_value=2**50), st.integers(min_value=1, max_value=2**30))
def test_rounding_brackets_the_size_with_whole_units(size: int, unit: int) -> None:
    up, down = round_up(size, unit), round_down(size, unit)
    assert up % unit == 0 and down % unit == 0
    assert down <= size <= up
    assert up - down in (0, unit)


def test_rounding_refuses_a_zero_unit() -> None:
    with pytest.raises(ValueError, match="positive"):
        round_up(5, 0)


def test_required_bytes_round_up_to_the_extent() -> None:
    assert resolve_capacity(1, 0, EXTENT) == EXTENT
    assert resolve_capacity(EXTENT + 1, 0, EXTENT) == 2 * EXTENT
    assert resolve_capacity(GiB, GiB, EXTENT) == GiB


def test_unset_range_gives_the_default_size() -> None:
    assert resolve_capacity(0, 0, EXTENT) == GiB
    assert resolve_capacity(0, 0, EXTENT, default_bytes=10 * MiB) == 12 * MiB


def test_unset_required_with_a_small_limit_rounds_the_limit_down() -> None:
    assert resolve_capacity(0, 10 * MiB, EXTENT) == 8 * MiB


def test_limit_below_one_extent_is_out_of_range() -> None:
    with pytest.raises(OutOfRange, match="extent"):
        resolve_capacity(0, MiB, EXTENT)


def test_rounding_above_the_limit_is_out_of_range() -> None:
    with pytest.raises(OutOfRange, match="limit_bytes"):
        resolve_capacity(5 * MiB, 6 * MiB, EXTENT)


def test_required_above_limit_is_out_of_range() -> None:
    with pytest.raises(OutOfRange):
        resolve_capacity(2 * GiB, GiB, EXTENT)


@pytest.mark.parametrize(("required", "limit"), [(-1, 0), (0, -1), (-5, -5)])
def test_negative_bounds_are_invalid(required: int, limit: int) -> None:
    with pytest.raises(InvalidArgument, match="negative"):
        resolve_capacity(required, limit, EXTENT)


@given(
    st.integers(min_value=0, max_value=2**45),
    st.integers(min_value=0, max_value=2**45),
    st.sampled_from([MiB, 4 * MiB, 32 * MiB]),
)
def test_resolved_size_honours_the_range_or_raises(required: int, limit: int, unit: int) -> None:
    try:
        size = resolve_capacity(required, limit, unit)
    except OutOfRange:
        assert limit and (required > limit or round_up(max(required, 1), unit) > limit)
        return
    assert size % unit == 0 and size > 0
    assert size >= required
    assert not limit or size <= limit
    assert capacity_satisfied(size, required, limit)


def test_from_source_defaults_to_the_source_size() -> None:
    assert resolve_capacity_from_source(0, 0, EXTENT, source_bytes=3 * GiB) == 3 * GiB


def test_from_source_refuses_a_smaller_volume() -> None:
    with pytest.raises(OutOfRange, match="source"):
        resolve_capacity_from_source(GiB, 0, EXTENT, source_bytes=2 * GiB)
    with pytest.raises(OutOfRange, match="source"):
        resolve_capacity_from_source(0, GiB, EXTENT, source_bytes=2 * GiB)


def test_from_source_may_be_larger() -> None:
    assert resolve_capacity_from_source(3 * GiB, 0, EXTENT, source_bytes=2 * GiB) == 3 * GiB


def test_existing_volume_compatibility() -> None:
    assert capacity_satisfied(GiB, GiB, 0)
    assert capacity_satisfied(GiB, 0, 2 * GiB)
    assert not capacity_satisfied(GiB, 2 * GiB, 0)
    assert not capacity_satisfied(2 * GiB, 0, GiB)


def test_expansion_grows_to_whole_extents() -> None:
    assert resolve_expansion(GiB + 1, 0, GiB, EXTENT) == GiB + EXTENT


def test_expansion_to_the_current_size_or_less_is_a_no_op() -> None:
    assert resolve_expansion(GiB, 0, 2 * GiB, EXTENT) == 2 * GiB


def test_expansion_never_shrinks() -> None:
    with pytest.raises(OutOfRange, match="shrink"):
        resolve_expansion(0, GiB, 2 * GiB, EXTENT)


def test_expansion_needs_a_range() -> None:
    with pytest.raises(InvalidArgument, match="capacity_range"):
        resolve_expansion(0, 0, GiB, EXTENT)


def test_expansion_over_the_limit_is_out_of_range() -> None:
    with pytest.raises(OutOfRange):
        resolve_expansion(GiB + 1, GiB + 2, GiB, EXTENT)


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512 B"), (4 * MiB, "4 MiB"), (GiB + GiB // 2, "1.5 GiB"), (GiB + 1, "1 GiB (1073741825 B)")],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_xfs_is_raised_to_the_smallest_size_mkfs_xfs_accepts() -> None:
    assert filesystem_floor(200 * MiB, 0, "xfs") == 300 * MiB
    assert filesystem_floor(200 * MiB, GiB, "xfs") == 300 * MiB
    assert filesystem_floor(2 * GiB, 0, "xfs") == 2 * GiB
    assert filesystem_floor(200 * MiB, 0, "ext4") == 200 * MiB
    assert filesystem_floor(200 * MiB, 0, None) == 200 * MiB, "a raw block volume has no file system floor"
    assert filesystem_floor(0, 0, "xfs") == 0, "unset stays unset: the default size applies"


def test_xfs_under_a_limit_below_its_floor_is_out_of_range() -> None:
    with pytest.raises(OutOfRange, match="xfs file system needs at least 300 MiB"):
        filesystem_floor(100 * MiB, 250 * MiB, "xfs")
