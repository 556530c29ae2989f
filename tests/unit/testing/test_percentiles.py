from __future__ import annotations

import pytest

from localcsi.testing.percentiles import nearest_rank

pytestmark = pytest.mark.unit


def test_p99_of_200_samples_is_the_second_largest() -> None:
    samples = [float(value) for value in range(200, 0, -1)]
    assert nearest_rank(samples, 0.99) == 199.0
    assert nearest_rank(samples, 0.5) == 101.0


def test_a_fraction_of_one_is_the_largest_and_none_is_refused() -> None:
    assert nearest_rank([3.0, 1.0, 2.0], 1.0) == 3.0
    with pytest.raises(ValueError):
        nearest_rank([], 0.99)
