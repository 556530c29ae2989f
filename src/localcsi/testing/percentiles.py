"""The nearest-rank percentile the benchmarks report (p99 of 200 samples is the 199th smallest), in
the package so that scripts run inside the node VM use the same one."""

from __future__ import annotations

from collections.abc import Iterable


def nearest_rank(values: Iterable[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
