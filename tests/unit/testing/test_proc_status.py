from __future__ import annotations

import os

import pytest

from localcsi.testing.proc_status import rss_kib

pytestmark = pytest.mark.unit


def test_this_process_has_a_resident_size_within_its_peak() -> None:
    own = rss_kib()
    assert 0 < own["VmRSS"] <= own["VmHWM"]
    assert rss_kib(os.getpid()).keys() == own.keys()


def test_a_process_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        rss_kib(2**22 + 1)
