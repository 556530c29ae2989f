"""The pure part of bench_scheduler.py: which side is compared with which, and ratios per round with
their spread. Rounds alternate the sides, so a side and its reference in the same round ran a minute
apart on the same apiserver; the ratio of a comparison is taken round by round and then summarized."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    label: str
    side: str
    reference: str
    goal: float | None = None


@dataclass(frozen=True)
class RatioSummary:
    ratios: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.mean(self.ratios)

    @property
    def low(self) -> float:
        return min(self.ratios)

    @property
    def high(self) -> float:
        return max(self.ratios)

    @property
    def spread(self) -> float:
        """Half the distance between the lowest and the highest round: ``mean ± spread`` covers every round
        when the rounds are symmetric about the mean."""
        return (self.high - self.low) / 2

    @property
    def standard_error(self) -> float | None:
        """The standard error of the mean, from the rounds' sample standard deviation; None for one round.
        Rounds of the same code vary by about 0.17 on this machine (docs/extender.md, session 22), so a
        mean is known to about 0.17 / sqrt(rounds)."""
        if len(self.ratios) < 2:
            return None
        return statistics.stdev(self.ratios) / math.sqrt(len(self.ratios))

    def meets(self, goal: float) -> bool:
        return self.mean >= goal


def round_ratios(rates: dict[str, list[float]], side: str, reference: str) -> RatioSummary:
    """``side``'s rate over ``reference``'s, for each round both ran."""
    pairs = list(zip(rates[side], rates[reference], strict=False))
    if not pairs:
        raise ValueError(f"no round has both {side} and {reference}")
    return RatioSummary(tuple(mine / theirs for mine, theirs in pairs))


def side_order(sides: list[str], round_index: int) -> list[str]:
    """Every other round runs the sides backwards, so that no side always follows the same one and a drift
    of the machine's speed during a round favours none."""
    return list(sides) if round_index % 2 == 0 else list(reversed(sides))


def describe(comparison: Comparison, summary: RatioSummary) -> str:
    rounds = ", ".join(f"{ratio:.2f}" for ratio in summary.ratios)
    error = summary.standard_error
    known = f"standard error {error:.2f}; " if error is not None else ""
    text = f"{comparison.label}: {summary.mean:.2f} ± {summary.spread:.2f} ({known}rounds {rounds})"
    if comparison.goal is not None:
        verdict = "met" if summary.meets(comparison.goal) else "MISSED"
        text += f", goal >= {comparison.goal:.2f} {verdict}"
    return text
