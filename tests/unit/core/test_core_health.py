import pytest
from core_factories import lv

from localcsi.core.health import HEALTHY, volume_condition

pytestmark = pytest.mark.unit


def test_a_plain_active_lv_is_healthy() -> None:
    assert volume_condition(lv(attr="-wi-ao----")) == HEALTHY


@pytest.mark.parametrize(
    ("attr", "status", "words"),
    [
        ("rwi-a-r-p-", "partial", "missing"),
        ("rwi-a-r-r-", "refresh needed", "RAID leg failed"),
        ("rwi-a-r-m-", "mismatches exist", "disagree"),
        ("-wi-a---X-", "", "cannot determine"),
        ("swi-I-s---", "", "overflowed"),
        ("-wi-a-----", "weird", "weird"),
    ],
)
def test_lv_faults_are_abnormal(attr: str, status: str, words: str) -> None:
    condition = volume_condition(lv("csi-1", attr, health_status=status))
    assert condition.abnormal
    assert words in condition.message and "vg0/csi-1" in condition.message


def test_writemostly_is_not_a_fault() -> None:
    assert not volume_condition(lv(attr="rwi-a-r-w-")).abnormal


def test_a_nearly_full_thin_pool_makes_its_volumes_abnormal() -> None:
    pool = lv("pool", "twi-aotz--", data_percent=97.5, metadata_percent=10.0)
    condition = volume_condition(lv(attr="Vwi-a-tz--", pool_lv="pool"), pool)
    assert condition.abnormal and "97.5% full" in condition.message


def test_full_pool_metadata_is_reported() -> None:
    pool = lv("pool", "twi-aotz--", data_percent=10.0, metadata_percent=99.0)
    assert "metadata is 99.0% full" in volume_condition(lv(attr="Vwi-a-tz--"), pool).message


def test_an_out_of_space_pool_flag_is_reported_once() -> None:
    pool = lv("pool", "twi-aotzD-", data_percent=100.0, metadata_percent=10.0)
    message = volume_condition(lv(attr="Vwi-a-tzD-"), pool).message
    assert message.count("out of data space") == 1


def test_a_roomy_pool_keeps_its_volumes_healthy() -> None:
    pool = lv("pool", "twi-aotz--", data_percent=50.0, metadata_percent=10.0)
    assert volume_condition(lv(attr="Vwi-a-tz--"), pool) == HEALTHY
