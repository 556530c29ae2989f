import pytest

from localcsi.core.errors import InvalidArgument
from localcsi.core.iolimits import (
    NO_LIMITS,
    UNLIMITED,
    IoLimits,
    Throttle,
    io_limits_from_fields,
    parse_io_limits,
    parse_mutable_parameters,
)
from localcsi.core.sizes import KiB, MiB

pytestmark = pytest.mark.unit


def test_bps_and_iops_cover_both_directions() -> None:
    limits = parse_io_limits({"bps": "1Mi", "iops": "1k", "vgName": "ignored"})
    assert limits.throttle() == Throttle(read_bps=MiB, write_bps=MiB, read_iops=1000, write_iops=1000)


def test_a_direction_key_overrides_the_shared_one() -> None:
    limits = parse_io_limits({"bps": "1Mi", "readBps": "4Mi", "writeIops": "20"})
    assert limits.throttle() == Throttle(read_bps=4 * MiB, write_bps=MiB, write_iops=20)


def test_zero_means_no_limit_even_over_a_shared_limit() -> None:
    limits = parse_io_limits({"bps": "1Mi", "writeBps": "0"})
    assert limits.throttle() == Throttle(read_bps=MiB)
    assert parse_io_limits({"bps": "0", "iops": "0"}).throttle().unlimited


def test_no_keys_is_unlimited_and_false() -> None:
    assert not NO_LIMITS and NO_LIMITS.throttle() is not None and NO_LIMITS.throttle().unlimited
    assert str(UNLIMITED) == "unlimited"
    assert str(Throttle(read_bps=512 * KiB, write_iops=7)) == f"rbps={512 * KiB} wiops=7"


def test_merged_changes_only_the_keys_given() -> None:
    current = parse_io_limits({"bps": "1Mi", "readIops": "100"})
    changed = current.merged(parse_io_limits({"readIops": "0", "writeBps": "2Mi"}))
    assert changed.as_strings() == {"bps": str(MiB), "readIops": "0", "writeBps": str(2 * MiB)}
    assert current.merged(NO_LIMITS) == current


def test_mutable_parameters_accept_only_limit_keys() -> None:
    assert parse_mutable_parameters({"iops": "10"}) == IoLimits((("iops", 10),))
    with pytest.raises(InvalidArgument, match=r"\['vgName'\] are not supported.*bps, iops, readBps"):
        parse_mutable_parameters({"vgName": "x", "iops": "10"})
    with pytest.raises(InvalidArgument, match=r"readIops.*not a quantity"):
        parse_mutable_parameters({"readIops": "fast"})


def test_stored_fields_read_back_and_skip_garbage() -> None:
    fields = [("bps", "1048576"), ("iops", "x1"), ("name", "abc"), ("writeIops", "0")]
    assert io_limits_from_fields(fields) == IoLimits((("bps", MiB), ("writeIops", 0)))
    stored = parse_io_limits({"readBps": "3", "iops": "9"})
    assert io_limits_from_fields(stored.as_strings().items()) == stored
